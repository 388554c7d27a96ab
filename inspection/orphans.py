"""Orphans swept: frame files without a row, rows without their file, stuck validations.

A frame's file is saved before its row is inserted (and deleted if the
insert fails), so a crash between the two leaves a file nobody points at; a
lost volume or a hand-made deletion leaves a row whose file is gone. The
sweep finds both through Django's storage API only (``listdir``,
``get_modified_time``, ``delete``), so it works the same on a local folder
and on S3. Only files and rows older than ``ORPHAN_GRACE_SECONDS`` are
touched: a frame being written right now is never taken for an orphan.

What it does with them: a file without a row is deleted. A row without its
file is kept (the camera was answered, reports count it) and its image name
is cleared, so the API answers "image missing" instead of failing on it.
Model versions left ``validating`` with no live validation job for longer
than the job heartbeat timeout are failed with a reason (validate again).

It runs as the job kind "orphans_sweep" on the "default" queue (enqueued by
``run_workers`` every ``ORPHAN_SWEEP_INTERVAL_SECONDS``, looking at the
frames of the last ``ORPHAN_SWEEP_DAYS``) and from
``manage.py orphans_sweep [--dry-run] [--days N]`` (every frame by default).
"""

import datetime as dt
import itertools
import logging
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.files.storage import Storage, default_storage
from django.utils import timezone

from common.jobs import job_progress, register_job_kind
from common.models import Job, JobState
from inspection.models import Inspection
from models_registry.choices import VersionStatus
from models_registry.models import ModelVersion
from models_registry.validation.jobs import validation_jobs
from models_registry.validation.service import validation_abandon

logger = logging.getLogger(__name__)

ORPHANS_SWEEP = "orphans_sweep"
FRAMES_FOLDER = "frames"
# Names listed in a report (the counts are always complete).
REPORT_SAMPLE = 20
QUERY_CHUNK = 500
STUCK_VALIDATION_REASON = (
    "Validation never finished: its worker stopped with no job left to end it; validate again."
)


def register() -> None:
    register_job_kind(ORPHANS_SWEEP, queue="default", run="inspection.orphans.run_orphans_sweep")


@dataclass
class OrphanReport:
    """What one sweep found (and, unless ``dry_run``, cleaned)."""

    dry_run: bool
    files_without_row: int = 0
    rows_without_file: int = 0
    validations_failed: int = 0
    files_sample: list[str] = field(default_factory=list)
    rows_sample: list[int] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verb = "found" if self.dry_run else "cleaned"
        return (
            f"{verb}: {self.files_without_row} frame file(s) without a row, "
            f"{self.rows_without_file} row(s) without their file, "
            f"{self.validations_failed} validation(s) stuck in 'validating'"
        )


def orphans_sweep(
    *,
    dry_run: bool = False,
    grace_seconds: int | None = None,
    storage: Storage | None = None,
    days: int | None = None,
    heartbeat: Callable[[str], None] | None = None,
) -> OrphanReport:
    """Find (and unless ``dry_run`` clean) orphan frame files, rows and stuck validations.

    ``days`` limits the frames looked at to the last so many (plant-local) days, so
    the periodic sweep stays cheap on a large store; None looks at every frame.
    """
    storage = storage or default_storage
    grace = settings.LINESIGHT["ORPHAN_GRACE_SECONDS"] if grace_seconds is None else grace_seconds
    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=grace)
    # One day more than asked: a plant's local date may be a day ahead of UTC.
    since = None if days is None else now.date() - dt.timedelta(days=days + 1)
    beat = heartbeat or (lambda message: None)
    report = OrphanReport(dry_run=dry_run)
    _sweep_files(storage, cutoff, report, beat, since=since)
    _sweep_rows(storage, cutoff, report, beat, since=since)
    _sweep_validations(report, dry_run=dry_run)
    logger.info("Orphans sweep %s", report.summary())
    return report


def _folders(storage: Storage, folder: str) -> Iterator[tuple[str, list[str]]]:
    """Every folder under ``folder`` that holds files, with their names (depth first)."""
    try:
        dirs, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    if files:
        yield folder, sorted(files)
    for name in sorted(dirs):
        yield from _folders(storage, posixpath.join(folder, name))


def _listed(storage: Storage, folder: str) -> set[str]:
    try:
        return set(storage.listdir(folder)[1])
    except FileNotFoundError:
        return set()


def _frame_folders(storage: Storage, since: dt.date | None) -> Iterator[tuple[str, list[str]]]:
    """Folders of frame files: all of them, or those of the days from ``since`` to tomorrow."""
    if since is None:
        yield from _folders(storage, FRAMES_FOLDER)
        return
    day = since
    while day <= timezone.now().date() + dt.timedelta(days=1):
        yield from _folders(storage, f"{FRAMES_FOLDER}/{day:%Y/%m/%d}")
        day += dt.timedelta(days=1)


def _sweep_files(
    storage: Storage, cutoff: dt.datetime, report: OrphanReport, beat, *, since: dt.date | None
) -> None:
    """Files under ``frames/`` that no row names, older than the cutoff: deleted."""
    for folder, files in _frame_folders(storage, since):
        beat(f"Files in {folder}")
        names = [posixpath.join(folder, name) for name in files]
        known: set[str] = set()
        for start in range(0, len(names), QUERY_CHUNK):
            chunk = names[start : start + QUERY_CHUNK]
            known.update(Inspection.objects.filter(image__in=chunk).values_list("image", flat=True))
        for name in names:
            if name in known or storage.get_modified_time(name) >= cutoff:
                continue  # a row names it, or it is being written right now
            if not _delete_if_still_orphan(storage, name, report.dry_run):
                continue
            report.files_without_row += 1
            if len(report.files_sample) < REPORT_SAMPLE:
                report.files_sample.append(name)


def _delete_if_still_orphan(storage: Storage, name: str, dry_run: bool) -> bool:
    """Delete an orphan file (not in a dry run); False when a row appeared for it meanwhile."""
    if Inspection.objects.filter(image=name).exists():
        return False
    if not dry_run:
        storage.delete(name)
    return True


def _sweep_rows(
    storage: Storage, cutoff: dt.datetime, report: OrphanReport, beat, *, since: dt.date | None
) -> None:
    """Rows older than the cutoff whose file is gone: kept, with the image name cleared.

    Rows are read in image-name order, so one listing per folder answers for all its rows.
    """
    recent = {} if since is None else {"local_date__gte": since}
    rows = (
        Inspection.objects.exclude(image="")
        .filter(received_at__lt=cutoff, **recent)
        .order_by("image")
        .values_list("pk", "image")
        .iterator(chunk_size=2000)
    )
    for folder, group in itertools.groupby(rows, key=lambda row: posixpath.dirname(row[1])):
        beat(f"Rows of {folder}")
        present = _listed(storage, folder)
        missing = [(pk, name) for pk, name in group if posixpath.basename(name) not in present]
        for pk, name in missing:
            if not report.dry_run:
                # Conditional: a row whose image was restored or changed meanwhile stays.
                if not Inspection.objects.filter(pk=pk, image=name).update(image=""):
                    continue
                logger.warning("Frame #%s lost its image %s; row kept, image cleared", pk, name)
            report.rows_without_file += 1
            if len(report.rows_sample) < REPORT_SAMPLE:
                report.rows_sample.append(pk)


def _sweep_validations(report: OrphanReport, *, dry_run: bool) -> None:
    """Versions ``validating`` with no live validation job and no sign of life for too long."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_SECONDS)
    for version in ModelVersion.objects.filter(status=VersionStatus.VALIDATING):
        jobs = validation_jobs(version)
        if jobs.filter(state__in=[JobState.QUEUED, JobState.RUNNING]).exists():
            continue  # a worker has it, or will; a dead one is the job sweep's to fail
        latest = jobs.first()
        last_sign = _last_sign_of_life(latest) if latest else version.uploaded_at
        if last_sign is not None and last_sign >= cutoff:
            continue
        if not dry_run and not validation_abandon(
            version_id=version.pk, reason=STUCK_VALIDATION_REASON
        ):
            continue
        report.validations_failed += 1
        report.versions.append(version.pk)


def _last_sign_of_life(job: Job) -> dt.datetime:
    return max(t for t in (job.created, job.started, job.heartbeat, job.finished) if t)


def run_orphans_sweep(job: Job) -> dict:
    """The "orphans_sweep" job: the sweep, with progress messages as its heartbeat."""
    payload = job.payload or {}

    def beat(message: str) -> None:
        job_progress(job, 0.5, message[:300])  # throttled; raises JobLost if swept

    days = payload.get("days", settings.LINESIGHT["ORPHAN_SWEEP_DAYS"])
    report = orphans_sweep(
        dry_run=bool(payload.get("dry_run", False)),
        days=None if days is None else int(days),
        heartbeat=beat,
    )
    return report.as_dict()
