"""Writes of datasets: create, import, add verified images, split, snapshot, relabel, remove,
map labels, export a snapshot."""

import dataclasses
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from common.files import delete_on_error
from common.jobs import job_enqueue
from common.models import Job
from masterdata.models import DefectType
from models_registry.datasets.choices import ImageSource, Split
from models_registry.datasets.images import ImageSkipped, check_image
from models_registry.datasets.importing import (
    ImportReport,
    Row,
    _store,
    commit_rows,
    image_storage,
    job_folder,
)
from models_registry.datasets.kinds import DATASET_EXPORT, DATASET_IMPORT
from models_registry.datasets.labels import active_defect_types, check_label_name, default_meaning
from models_registry.datasets.models import (
    Dataset,
    DatasetImage,
    DatasetLabel,
    DatasetSnapshot,
    DatasetSplit,
    SnapshotImage,
)
from models_registry.datasets.splitting import (
    GROUPINGS,
    Item,
    assign_splits,
    check_shares,
    group_keys,
)

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
UPDATE_CHUNK = 500


def _user(user):
    return user if user is not None and user.is_authenticated else None


def dataset_create(*, name: str, description: str = "", created_by=None) -> Dataset:
    dataset = Dataset(name=name, description=description, created_by=_user(created_by))
    dataset.full_clean()
    dataset.save()
    return dataset


def dataset_update(*, dataset: Dataset, description: str) -> Dataset:
    """Change what the dataset is described as (its name is fixed: URLs and snapshots use it)."""
    dataset.description = description
    dataset.save(update_fields=["description", "updated_at"])
    return dataset


def dataset_import_start(*, dataset: Dataset, archive: File, requested_by=None) -> Job:
    """Store the uploaded archive and queue the import job that unpacks it on a worker."""
    original = PurePosixPath((archive.name or "").replace("\\", "/")).name
    lower = original.lower()
    if not lower.endswith(ARCHIVE_SUFFIXES):
        raise ValidationError(
            {
                "archive": "Upload a .zip or .tar.gz of class folders (<label>/<file>) or of "
                "images with a labels.csv."
            }
        )
    limit = settings.LINESIGHT.get(
        "DATASET_MAX_ARCHIVE_BYTES", settings.LINESIGHT["MAX_ARTIFACT_BYTES"]
    )
    if archive.size is not None and archive.size > limit:
        raise ValidationError({"archive": f"The archive is over {limit:,} bytes."})
    storage = image_storage()
    suffix = ".zip" if lower.endswith(".zip") else ".tar.gz"
    stored = storage.save(f"datasets/{dataset.pk}/uploads/{uuid.uuid4().hex}{suffix}", archive)
    with delete_on_error(storage, stored), transaction.atomic():
        return job_enqueue(
            kind=DATASET_IMPORT,
            target=dataset,
            requested_by=_user(requested_by),
            payload={"archive": stored, "original_name": original[:200]},
        )


def _split_counts(dataset: Dataset) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (
        DatasetImage.objects.filter(dataset=dataset, removed_at__isnull=True)
        .values_list("split", "label__name")
        .order_by()
    )
    for (split, label), n in Counter(rows).items():
        counts[split][label] = n
    return {split: dict(sorted(labels.items())) for split, labels in sorted(counts.items())}


def _next_number(queryset) -> int:
    return (queryset.aggregate(top=Max("number"))["top"] or 0) + 1


def dataset_split(
    *,
    dataset: Dataset,
    shares: dict | None = None,
    seed: int = 0,
    grouping: str = "auto",
    created_by=None,
    only_unassigned: bool = False,
) -> DatasetSplit:
    """(Re-)split the dataset's images and record how; ``only_unassigned`` keeps placed groups."""
    shares = check_shares(shares)
    if grouping not in GROUPINGS:
        raise ValidationError({"grouping": f"Grouping is one of {', '.join(GROUPINGS)}."})
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValidationError({"seed": "The seed is a whole number."})
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        rows = list(
            DatasetImage.objects.filter(dataset=dataset, removed_at__isnull=True)
            .values_list("id", "label_id", "original_name", "group", "split")
            .order_by("id")
        )
        if not rows:
            raise ValidationError({"dataset": f"{dataset} has no images to split yet."})
        keys = group_keys(((r[0], r[2], r[3]) for r in rows), grouping)
        fixed = {}
        if only_unassigned:
            fixed = {keys[r[0]]: r[4] for r in rows if r[4] != Split.UNASSIGNED}
        items = [Item(id=r[0], label=r[1], key=keys[r[0]]) for r in rows]
        assignment = assign_splits(items, shares=shares, seed=seed, fixed=fixed)
        _apply(dataset, assignment)
        parameters = {"shares": shares, "seed": seed, "grouping": grouping}
        if only_unassigned:
            parameters["only_unassigned"] = True
        return DatasetSplit.objects.create(
            dataset=dataset,
            number=_next_number(dataset.splits.all()),
            parameters=parameters,
            counts=_split_counts(dataset),
            created_by=_user(created_by),
        )


def _apply(dataset: Dataset, assignment: dict[int, str]) -> None:
    by_split: dict[str, list[int]] = defaultdict(list)
    for image_id, split in assignment.items():
        by_split[split].append(image_id)
    for split, ids in by_split.items():
        for start in range(0, len(ids), UPDATE_CHUNK):
            DatasetImage.objects.filter(
                dataset=dataset, pk__in=ids[start : start + UPDATE_CHUNK]
            ).update(split=split)


def _split_for_snapshot(*, dataset: Dataset, split: dict | None, created_by) -> DatasetSplit | None:
    """The split a snapshot freezes: a new one if settings are given or images are unassigned."""
    if split is not None:
        return dataset_split(dataset=dataset, created_by=created_by, **_split_arguments(split))
    last = dataset.splits.order_by("-number").first()
    unassigned = DatasetImage.objects.filter(
        dataset=dataset, removed_at__isnull=True, split=Split.UNASSIGNED
    ).exists()
    if not unassigned:
        return last
    parameters = dict(last.parameters) if last else {}
    parameters.pop("only_unassigned", None)
    return dataset_split(
        dataset=dataset, created_by=created_by, only_unassigned=last is not None, **parameters
    )


def _split_arguments(split: dict) -> dict:
    allowed = {"shares", "seed", "grouping"}
    unknown = set(split) - allowed
    if unknown:
        raise ValidationError({"split": f"Unknown split setting(s): {', '.join(sorted(unknown))}."})
    return dict(split)


def snapshot_create(
    *, dataset: Dataset, created_by=None, split: dict | None = None, note: str = ""
) -> DatasetSnapshot:
    """Freeze the dataset's images with their labels and splits, numbered 1, 2, 3..."""
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        images = DatasetImage.objects.filter(dataset=dataset, removed_at__isnull=True)
        if not images.exists():
            raise ValidationError({"dataset": f"{dataset} has no images; import some first."})
        split_row = _split_for_snapshot(dataset=dataset, split=split, created_by=created_by)
        counts = _split_counts(dataset)
        snapshot = DatasetSnapshot.objects.create(
            dataset=dataset,
            number=_next_number(dataset.snapshots.all()),
            split=split_row,
            split_parameters=split_row.parameters if split_row else {},
            counts=counts,
            image_count=sum(sum(labels.values()) for labels in counts.values()),
            note=note,
            created_by=_user(created_by),
        )
        rows = images.values_list("id", "label_id", "split").order_by("id").iterator(2000)
        SnapshotImage.objects.bulk_create(
            (
                SnapshotImage(snapshot=snapshot, image_id=i, label_id=lb, split=s)
                for i, lb, s in rows
            ),
            batch_size=1000,
        )
    return snapshot


def label_for(*, dataset: Dataset, name: str) -> DatasetLabel:
    """The dataset's label of that name, made (with its default meaning) if new."""
    check_label_name(name)
    label = dataset.labels.filter(name=name).first()
    if label is None:
        defect_type, no_defect = default_meaning(name, active_defect_types())
        label = DatasetLabel.objects.create(
            dataset=dataset, name=name, defect_type=defect_type, no_defect=no_defect
        )
    return label


def image_relabel(*, image: DatasetImage, label: str) -> DatasetImage:
    """Give an image another label; snapshots keep the label they froze."""
    image.label = label_for(dataset=image.dataset, name=label)
    image.save(update_fields=["label"])
    return image


def image_remove(*, image: DatasetImage) -> None:
    """Take an image out of the dataset: hidden if a snapshot holds it, else deleted."""
    if SnapshotImage.objects.filter(image=image).exists():
        DatasetImage.objects.filter(pk=image.pk).update(removed_at=timezone.now())
        return
    names = [image.file.name, image.thumbnail.name]
    storage = image_storage()
    with transaction.atomic():
        image.delete()
        transaction.on_commit(lambda: [storage.delete(n) for n in names if n])


def dataset_labels_update(
    *, dataset: Dataset, mapping: Mapping[str, str | None]
) -> list[DatasetLabel]:
    """Map the dataset's labels to defect type codes; ``None`` (or "") means 'no defect'.

    The same meanings as a version's label mapping. Labels not named keep
    theirs; an unknown label or defect code is refused and nothing changes.
    """
    labels = {label.name: label for label in dataset.labels.all()}
    unknown = sorted(set(mapping) - set(labels))
    if unknown:
        raise ValidationError({"mapping": f"{dataset} has no label(s) {', '.join(unknown)}."})
    codes = {code for code in mapping.values() if code}
    defect_types = {d.code: d for d in DefectType.objects.filter(code__in=codes, archived=False)}
    missing = sorted(codes - set(defect_types))
    if missing:
        raise ValidationError(
            {"mapping": f"No active defect type with code(s) {', '.join(missing)}."}
        )
    with transaction.atomic():
        for name, code in mapping.items():
            label = labels[name]
            label.defect_type = defect_types[code] if code else None
            label.no_defect = not code
            label.save(update_fields=["defect_type", "no_defect"])
    return sorted(labels.values(), key=lambda label: label.name)


# --- Images whose label is already decided (verified inspection frames) -------


@dataclass(frozen=True)
class IncomingImage:
    """The bytes of one image and its decided label, e.g. a frame an inspector verified."""

    data: bytes
    label: str
    name: str = ""
    group: str = ""
    source: str = ImageSource.UPLOAD
    inspection_id: int | None = None


def label_name_for_meaning(*, dataset: Dataset, defect_type: DefectType | None) -> str:
    """The dataset's label that means ``defect_type`` (None: no defect), or the name a new one
    gets: the defect type's code, or 'ok' (a taken name with another meaning gets a suffix)."""
    labels = dataset.labels.filter(no_defect=defect_type is None, defect_type=defect_type)
    found = labels.order_by("name").values_list("name", flat=True).first()
    if found is not None:
        return found
    name = "ok" if defect_type is None else defect_type.code
    taken = set(dataset.labels.values_list("name", flat=True))
    return name if name not in taken else f"{name}-verified"


def dataset_add_images(
    *,
    dataset: Dataset,
    images: Iterable[IncomingImage],
    meanings: Mapping[str, DefectType | None] | None = None,
    job: Job | None = None,
) -> dict:
    """Add labelled image bytes to the dataset: all that pass the import's checks, or none.

    Each image is checked as an import checks it (format, pixel limit, full
    decode) and stored as sent with its thumbnail, one in memory at a time;
    exact duplicates (same sha256) are counted and skipped. A new label gets
    its meaning from ``meanings`` (None: no defect), else the default rule.
    Returns the import's report shape.
    """
    report = ImportReport(archive="", layout="labelled images")
    meanings = meanings if meanings is not None else {}  # the caller may fill it as it goes
    rows: list[Row] = []
    try:
        _check_and_store(dataset, images, job, report, rows)
        commit_rows(job, dataset, rows, report, meanings)
    except BaseException:
        _delete_files([name for row in rows for name in (row.file, row.thumbnail)])
        raise
    return report.as_dict()


def _check_and_store(dataset, images, job, report, rows: list[Row]) -> None:
    storage = image_storage()
    folder = job_folder(dataset.pk, job) if job else f"datasets/{dataset.pk}/{uuid.uuid4().hex}"
    seen = set(DatasetImage.objects.filter(dataset=dataset).values_list("sha256", flat=True))
    max_pixels = settings.LINESIGHT["MAX_FRAME_PIXELS"]
    for incoming in images:
        try:
            checked = check_image(incoming.data, max_pixels=max_pixels)
        except ImageSkipped as skipped:
            report.skip(incoming.name, str(skipped), incoming.label)
            continue
        if checked.sha256 in seen:
            report.duplicates[incoming.label] += 1
            continue
        seen.add(checked.sha256)
        check_label_name(incoming.label)
        file, thumbnail = _store(storage, folder, checked, incoming.data)
        # Facts only are kept, never the bytes: memory stays flat in the number of images.
        facts = dataclasses.replace(checked, thumbnail=b"")
        rows.append(
            Row(
                incoming.name,
                incoming.label,
                incoming.group,
                file,
                thumbnail,
                facts,
                source=incoming.source,
                inspection_id=incoming.inspection_id,
            )
        )


def _delete_files(names: list[str]) -> None:
    storage = image_storage()
    for name in names:
        if name:
            storage.delete(name)


# --- Export -------------------------------------------------------------------


def snapshot_export_start(*, snapshot: DatasetSnapshot, requested_by=None) -> Job:
    """Queue the export of a snapshot as a .zip of class folders with a labels.csv."""
    if not snapshot.image_count:
        raise ValidationError({"snapshot": f"{snapshot} holds no images to export."})
    return job_enqueue(
        kind=DATASET_EXPORT,
        target=snapshot,
        requested_by=_user(requested_by),
        payload={"dataset": snapshot.dataset.name, "snapshot": snapshot.number},
    )
