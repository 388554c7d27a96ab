"""The dataset import job: unpack an uploaded archive, check every image, add them all or none.

Phase one reads the archive's files one at a time (a zip in place, a .tar.gz
unpacked to a temporary folder; both with the model archives' checks and
limits), checks each image and stores its original bytes and a thumbnail;
progress is written as it goes.
Phase two adds every row in one transaction. If either fails, the files
stored so far are deleted: a failed import adds no image and leaves no file.
"""

import dataclasses
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import transaction

from common.files import delete_on_error
from common.jobs import JobFailed, job_progress
from common.models import Job
from masterdata.models import DefectType
from models_registry.datasets.choices import ImageSource
from models_registry.datasets.images import CheckedImage, ImageSkipped, check_image
from models_registry.datasets.labels import active_defect_types, default_meaning
from models_registry.datasets.layout import Entry, FolderSource, Source, archive_entries
from models_registry.datasets.models import Dataset, DatasetImage, DatasetLabel
from models_registry.validation import archive
from models_registry.validation.errors import ModelRejected

MAX_REPORTED_SKIPS = 500
BULK_BATCH = 500


def image_storage() -> Storage:
    return DatasetImage._meta.get_field("file").storage


def job_folder(dataset_id: int, job: Job) -> str:
    return f"datasets/{dataset_id}/{job.pk.hex}"


@dataclass
class ImportReport:
    """What came in, per class, and what was skipped and why (stored in the job's result)."""

    archive: str
    layout: str = ""
    per_label: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    skipped: list = field(default_factory=list)
    skipped_count: int = 0
    labels_created: list = field(default_factory=list)
    seconds: float = 0.0

    def skip(self, name: str, reason: str, label: str = "") -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_REPORTED_SKIPS:
            self.skipped.append({"file": name[:300], "label": label, "reason": reason})

    def as_dict(self) -> dict:
        imported = sum(self.per_label.values())
        return {
            "archive": self.archive,
            "layout": self.layout,
            "imported": imported,
            "per_label": dict(sorted(self.per_label.items())),
            "duplicates": sum(self.duplicates.values()),
            "duplicates_per_label": dict(sorted(self.duplicates.items())),
            "skipped_count": self.skipped_count,
            "skipped": self.skipped,
            "labels_created": self.labels_created,
            "seconds": round(self.seconds, 2),
            "images_per_second": round(imported / self.seconds, 1) if self.seconds else None,
        }


def archive_limits() -> archive.ArchiveLimits:
    limits = settings.LINESIGHT
    return archive.ArchiveLimits(
        max_entries=limits["DATASET_ARCHIVE_MAX_ENTRIES"],
        max_unpacked_bytes=limits["DATASET_ARCHIVE_MAX_UNPACKED_BYTES"],
        max_ratio=limits["ARCHIVE_MAX_RATIO"],
    )


@contextmanager
def open_source(job: Job, work: Path) -> Iterator[Source]:
    """The uploaded archive as a Source: a zip read in place, a .tar.gz unpacked below ``work``.

    The checks and limits are the model archives' (models_registry.validation.archive).
    """
    name = job.payload["archive"]
    local = work / ("upload.zip" if name.endswith(".zip") else "upload.tar.gz")
    with image_storage().open(name, "rb") as source, open(local, "wb") as sink:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            sink.write(chunk)
    try:
        if local.suffix == ".zip":
            with archive.ZipReader(local, archive_limits()) as reader:
                yield reader
        else:
            root = work / "unpacked"
            root.mkdir()
            archive.unpack_tar_gz(local, root, archive_limits())
            local.unlink()
            yield FolderSource(root)
    except ModelRejected as rejected:
        raise JobFailed(rejected.reason) from None


def _check_classes(dataset: Dataset, entries: list[Entry]) -> None:
    incoming = {entry.label for entry in entries}
    existing = set(
        DatasetImage.objects.filter(dataset=dataset, removed_at__isnull=True)
        .values_list("label__name", flat=True)
        .distinct()
    )
    if len(incoming | existing) < 2:
        only = ", ".join(f"'{label[:60]}'" for label in sorted(incoming))
        raise JobFailed(
            f"The archive holds a single class ({only}) and the dataset has no other: a dataset "
            "needs at least two classes. Add the other classes' folders."
        )


@dataclass(frozen=True)
class Row:
    """An image checked and stored in phase one, waiting for its row in phase two."""

    name: str
    label: str
    group: str
    file: str
    thumbnail: str
    image: CheckedImage
    source: str = ImageSource.UPLOAD
    inspection_id: int | None = None


def _store(storage: Storage, folder: str, image: CheckedImage, data: bytes) -> tuple[str, str]:
    file = storage.save(f"{folder}/{image.sha256}{image.extension}", ContentFile(data))
    try:
        thumbnail = storage.save(f"{folder}/{image.sha256}.thumb.jpg", ContentFile(image.thumbnail))
    except BaseException:
        storage.delete(file)
        raise
    return file, thumbnail


def _examine_all(
    job: Job,
    dataset: Dataset,
    source: Source,
    entries: list[Entry],
    report: ImportReport,
    stored: list[str],
) -> list[Row]:
    """Check and store each image in turn (one in memory at a time); duplicates are counted."""
    storage, folder = image_storage(), job_folder(dataset.pk, job)
    seen = set(DatasetImage.objects.filter(dataset=dataset).values_list("sha256", flat=True))
    max_pixels = settings.LINESIGHT["MAX_FRAME_PIXELS"]
    max_bytes = settings.LINESIGHT["DATASET_MAX_IMAGE_BYTES"]
    rows: list[Row] = []
    for done, entry in enumerate(entries, start=1):
        job_progress(job, 0.05 + 0.9 * done / len(entries), f"Checked {done} of {len(entries)}")
        data = source.read(entry.key, max_bytes)
        if len(data) > max_bytes:
            report.skip(entry.name, f"over {max_bytes:,} bytes", entry.label)
            continue
        try:
            image = check_image(data, max_pixels=max_pixels)
        except ImageSkipped as skipped:
            report.skip(entry.name, str(skipped), entry.label)
            continue
        if image.sha256 in seen:
            report.duplicates[entry.label] += 1
            continue
        seen.add(image.sha256)
        file, thumbnail = _store(storage, folder, image, data)
        stored += [file, thumbnail]
        # The row keeps the facts, not the thumbnail's bytes: memory stays flat.
        facts = dataclasses.replace(image, thumbnail=b"")
        rows.append(Row(entry.name, entry.label, entry.group, file, thumbnail, facts))
    return rows


def _labels_for(
    dataset: Dataset,
    names: set[str],
    report: ImportReport,
    meanings: Mapping[str, DefectType | None],
) -> dict[str, DatasetLabel]:
    """The dataset's labels by name; a new one means what ``meanings`` says (None: no
    defect), else what the default rule reads in its name."""
    labels = {label.name: label for label in dataset.labels.all()}
    defect_types = active_defect_types()
    for name in sorted(names - set(labels)):
        if name in meanings:
            defect_type, no_defect = meanings[name], meanings[name] is None
        else:
            defect_type, no_defect = default_meaning(name, defect_types)
        labels[name] = DatasetLabel.objects.create(
            dataset=dataset, name=name, defect_type=defect_type, no_defect=no_defect
        )
        report.labels_created.append(name)
    return labels


def _already_in(dataset: Dataset, shas: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(shas), BULK_BATCH):
        found |= set(
            DatasetImage.objects.filter(
                dataset=dataset, sha256__in=shas[start : start + BULK_BATCH]
            ).values_list("sha256", flat=True)
        )
    return found


def commit_rows(
    job: Job | None,
    dataset: Dataset,
    rows: list[Row],
    report: ImportReport,
    meanings: Mapping[str, DefectType | None] | None = None,
) -> None:
    """Add every row in one transaction; the stored files go if it fails."""
    storage = image_storage()
    names = [name for row in rows for name in (row.file, row.thumbnail)]
    with delete_on_error(storage, *names), transaction.atomic():
        # One import commits at a time per dataset, so the duplicate check holds.
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        raced = _already_in(dataset, [row.image.sha256 for row in rows])
        labels = _labels_for(dataset, {row.label for row in rows}, report, meanings or {})
        new_rows = (
            _image_row(dataset, job, row, labels) for row in rows if row.image.sha256 not in raced
        )
        DatasetImage.objects.bulk_create(new_rows, batch_size=BULK_BATCH)
    for row in rows:
        if row.image.sha256 in raced:  # added by an import that committed meanwhile
            report.duplicates[row.label] += 1
            storage.delete(row.file)
            storage.delete(row.thumbnail)
        else:
            report.per_label[row.label] += 1


def _image_row(dataset: Dataset, job: Job | None, row: Row, labels: dict) -> DatasetImage:
    image = row.image
    return DatasetImage(
        dataset=dataset,
        file=row.file,
        thumbnail=row.thumbnail,
        sha256=image.sha256,
        size_bytes=image.size_bytes,
        width=image.width,
        height=image.height,
        mode=image.mode,
        format=image.format,
        label=labels[row.label],
        group=row.group[:200],
        original_name=row.name[:300],
        source=row.source,
        inspection_id=row.inspection_id,
        import_job=job,
    )


def _delete(names: list[str]) -> None:
    storage = image_storage()
    for name in names:
        storage.delete(name)


def _phase_one(job: Job, dataset: Dataset, report: ImportReport, stored: list[str]) -> list[Row]:
    work_dir = settings.LINESIGHT.get("SANDBOX_WORK_DIR") or None
    with tempfile.TemporaryDirectory(prefix="linesight-import-", dir=work_dir) as work:
        job_progress(job, 0.0, "Reading the archive", force=True)
        with open_source(job, Path(work)) as source:
            report.layout, entries = archive_entries(source, report.skip)
            _check_classes(dataset, entries)
            rows = _examine_all(job, dataset, source, entries, report, stored)
    if not rows and not report.duplicates:
        raise JobFailed(
            f"No image of the archive could be imported: {report.skipped_count} file(s) were "
            "skipped; the report lists why."
        )
    return rows


def run_import(job: Job) -> dict:
    """The ``dataset_import`` job: all of the archive's acceptable images, or none."""
    dataset = Dataset.objects.get(pk=job.target_id)
    report = ImportReport(archive=job.payload.get("original_name", ""))
    started = time.monotonic()
    cleanup_import(job)  # what an earlier attempt of this job left when its worker died
    stored: list[str] = []
    try:
        rows = _phase_one(job, dataset, report, stored)
    except BaseException as error:
        _delete(stored)
        if isinstance(error, JobFailed):
            _delete([job.payload["archive"]])
            report.seconds = time.monotonic() - started
            raise JobFailed(str(error), result=report.as_dict()) from None
        raise
    job_progress(job, 0.97, f"Adding {len(rows)} images", force=True)
    commit_rows(job, dataset, rows, report)
    _delete([job.payload["archive"]])
    report.seconds = time.monotonic() - started
    return report.as_dict()


def cleanup_import(job: Job) -> None:
    """Delete the files an import job stored but never committed (its worker died)."""
    storage = image_storage()
    folder = job_folder(int(job.target_id), job)
    try:
        _, files = storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    kept = set(DatasetImage.objects.filter(import_job=job).values_list("file", flat=True)) | set(
        DatasetImage.objects.filter(import_job=job).values_list("thumbnail", flat=True)
    )
    for name in files:
        path = f"{folder}/{name}"
        if path not in kept:
            storage.delete(path)
