"""Retention: each plant's policy applied to its frames' images and rows, in small batches.

A plant's policy (``RetentionPolicy``, or its defaults when the plant has none) says how
many days images and rows are kept. In order, for every enabled plant:

1. images of passes older than ``pass_images_days``, except a sampled share
   (``pass_sample_percent``, chosen by a hash of the frame id so every run agrees);
2. every image older than ``kept_images_days`` (fails, reviews, verified and dataset
   frames, the sampled passes);
3. rows older than ``rows_days``, with their verifications and any image left.

A frame waiting for review (pending, claimed or not) or held by a dataset snapshot is
never touched. Each batch (``RETENTION_BATCH_SIZE`` rows, in id order, a pause of
``RETENTION_PAUSE_SECONDS`` after it) locks its rows with SKIP LOCKED, so a frame an
inspector is deciding is left for the next run and no frame INSERT ever waits. An
image's row is marked first (name cleared, ``image_deleted_at`` set), then its file is
deleted through the storage API (local folder or S3 alike); a file the storage refuses
to delete is left to the orphans sweep.
What went is added up per plant and day in ``RetentionDay``.

The job kind "retention" (queue "retention") runs every ``RETENTION_INTERVAL_SECONDS``
from run_workers; ``manage.py retention --dry-run`` and the admin action show what
would go. Storage in use per plant (``PlantStorage``) is measured at the end of each run.
"""

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import Storage, default_storage
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Mod
from django.utils import timezone

from common.jobs import job_progress, register_job_kind
from common.models import Job
from inspection.choices import ReviewStatus, Verdict
from inspection.models import Inspection, RetentionDay, RetentionPolicy, Verification
from inspection.storage_usage import storage_measure
from masterdata.models import Line, Plant
from models_registry.datasets.models import DatasetImage, SnapshotImage

logger = logging.getLogger(__name__)

RETENTION = "retention"
# Knuth's multiplicative hash: ids spread evenly over the buckets, whatever their order.
SAMPLE_MULTIPLIER = 2654435761
SAMPLE_BUCKETS = 10_000


def register() -> None:
    register_job_kind(RETENTION, queue="retention", run="inspection.retention.run_retention")


def policy_for(plant: Plant) -> RetentionPolicy:
    """The plant's policy, or an unsaved one with the documented defaults."""
    policy = RetentionPolicy.objects.filter(plant=plant).first()
    return policy if policy is not None else RetentionPolicy(plant=plant)


@dataclass
class PlantRetention:
    """What retention removed (or, in a dry run, would remove) from one plant."""

    plant: str
    passes_images: int = 0
    kept_images: int = 0
    rows: int = 0
    bytes_freed: int = 0
    file_errors: int = 0
    skipped: str = ""

    @property
    def images(self) -> int:
        return self.passes_images + self.kept_images


@dataclass
class RetentionReport:
    dry_run: bool
    plants: list[PlantRetention] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        parts = [
            f"{p.plant}: {p.images} image(s) ({p.passes_images} of passes), {p.rows} row(s)"
            + (f", {p.file_errors} file(s) refused by storage" if p.file_errors else "")
            + (f" [{p.skipped}]" if p.skipped else "")
            for p in self.plants
        ]
        return f"Retention {verb}: " + ("; ".join(parts) or "no plant")


def retention_policy_check(
    *, kept_images_days: int | None, pass_images_days: int | None, rows_days: int | None
) -> None:
    """Periods that contradict each other are refused, with the reason."""
    if kept_images_days is not None and (
        pass_images_days is None or pass_images_days > kept_images_days
    ):
        raise ValidationError(
            {
                "pass_images_days": "Passes' images are kept at most as long as the kept "
                f"images ({kept_images_days} days); give {kept_images_days} or fewer."
            }
        )
    longest = max((d for d in (kept_images_days, pass_images_days) if d is not None), default=0)
    if rows_days is not None and (kept_images_days is None or rows_days < longest):
        raise ValidationError(
            {
                "rows_days": "Rows are kept at least as long as the images they describe: "
                "give no fewer days than the image periods (which must then not be forever)."
            }
        )


# --- Which frames ---------------------------------------------------------------


def _protected() -> Q:
    """Frames never deleted: waiting for review, or held by a dataset snapshot."""
    in_snapshot = DatasetImage.objects.filter(
        inspection_id__isnull=False,
        pk__in=SnapshotImage.objects.values("image_id"),
    ).values("inspection_id")
    return Q(review_status=ReviewStatus.PENDING) | Q(pk__in=in_snapshot)


def _plain_pass() -> Q:
    """A pass nobody reviewed and no dataset holds: the frames kept the shortest."""
    in_dataset = DatasetImage.objects.filter(inspection_id__isnull=False).values("inspection_id")
    return (
        Q(verdict=Verdict.PASS)
        & Q(review_status=ReviewStatus.NOT_REQUIRED)
        & Q(verified_at__isnull=True)
        & ~Q(pk__in=in_dataset)
    )


def not_sampled(queryset: QuerySet, percent: float) -> QuerySet:
    """The frames outside the deterministic sample of ``percent`` (the same ids on every run
    and database: a hash of the id, not a random draw)."""
    bucket = Mod(F("id") * SAMPLE_MULTIPLIER, SAMPLE_BUCKETS)
    return queryset.alias(sample_bucket=bucket).filter(
        sample_bucket__gte=round(percent * SAMPLE_BUCKETS / 100)
    )


def _cutoff(plant: Plant, days: int, now: dt.datetime) -> dt.date:
    """Frames of a plant-local date before this are older than ``days``."""
    return now.astimezone(plant.tzinfo).date() - dt.timedelta(days=days)


def rows_kept_since(now: dt.datetime | None = None) -> dt.date | None:
    """The first capture date whose rows every plant's policy still keeps (None: rows are
    kept forever). Before it, retention may have deleted rows whose report rollups remain,
    so those days' rollups are never rebuilt from the rows left."""
    now = now or timezone.now()
    cutoffs = [
        _cutoff(plant, policy.rows_days, now)
        for plant in Plant.objects.all()
        if (policy := policy_for(plant)).rows_days is not None
    ]
    return max(cutoffs, default=None)


def older_than(plant: Plant, days: int, now: dt.datetime) -> QuerySet:
    """The plant's frames captured before the plant-local day ``days`` ago and received
    before it too, never those under review or in a snapshot.

    "Received before" bounds the frames by id (the last one received before that day):
    batches walk the primary key from the oldest frame and stop at the bound, instead of
    reading every newer frame to find none. A frame uploaded late (a device's buffer)
    is kept until it has been on the server as long.
    """
    cutoff = _cutoff(plant, days, now)
    lines = list(Line.objects.filter(plant=plant).values_list("pk", flat=True))
    start = dt.datetime.combine(cutoff, dt.time(), tzinfo=plant.tzinfo)
    bound = (
        Inspection.objects.filter(line_id__in=lines, received_at__lt=start)
        .order_by("-received_at")
        .values_list("pk", flat=True)
        .first()
    )
    if bound is None:
        return Inspection.objects.none()
    return Inspection.objects.filter(
        line_id__in=lines, pk__lte=bound, local_date__lt=cutoff
    ).exclude(_protected())


def pass_images_due(plant: Plant, policy: RetentionPolicy, now: dt.datetime) -> QuerySet:
    """Images of plain passes past ``pass_images_days``, but the sampled share."""
    if policy.pass_images_days is None:
        return Inspection.objects.none()
    due = older_than(plant, policy.pass_images_days, now).filter(_plain_pass()).exclude(image="")
    return not_sampled(due, policy.pass_sample_percent)


def kept_images_due(plant: Plant, policy: RetentionPolicy, now: dt.datetime) -> QuerySet:
    """Every image past ``kept_images_days`` (fails, reviews, datasets, sampled passes)."""
    if policy.kept_images_days is None:
        return Inspection.objects.none()
    return older_than(plant, policy.kept_images_days, now).exclude(image="")


def rows_due(plant: Plant, policy: RetentionPolicy, now: dt.datetime) -> QuerySet:
    if policy.rows_days is None:
        return Inspection.objects.none()
    return older_than(plant, policy.rows_days, now)


# --- Applying it -----------------------------------------------------------------


@dataclass
class _Run:
    plant: Plant
    storage: Storage
    batch_size: int
    dry_run: bool
    beat: Callable[[str], None]
    report: PlantRetention
    pause: float = 0.0

    def rest(self) -> None:
        """Give the frames' server the CPU and the database for a moment between batches."""
        if self.pause > 0:
            time.sleep(self.pause)


def _batches(queryset: QuerySet, size: int):
    """Rows of ``queryset`` in id order, ``size`` at a time (keyset: each batch costs alike)."""
    last = 0
    while True:
        rows = list(
            queryset.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", "image", "image_bytes")[:size]
        )
        if not rows:
            return
        last = rows[-1][0]
        yield rows


def _locked(queryset: QuerySet, ids: list[int]) -> list[int]:
    """The batch's rows still due, locked; rows locked by others (a decision) are skipped."""
    of = ("self",) if transaction.get_connection().features.has_select_for_update_of else ()
    return list(
        queryset.filter(pk__in=ids)
        .select_for_update(skip_locked=True, of=of)
        .values_list("pk", flat=True)
    )


def _delete_files(run: _Run, names: list[str]) -> int:
    """Delete stored files; returns how many the storage refused (left to the orphans sweep)."""
    errors = 0
    for name in names:
        try:
            run.storage.delete(name)
        except Exception as exc:  # S3 ClientError, OSError: the storage's own errors
            errors += 1
            logger.warning("Retention could not delete %s: %s: %s", name, type(exc).__name__, exc)
    return errors


def _remove_images(run: _Run, queryset: QuerySet, *, counter: str) -> None:
    for rows in _batches(queryset, run.batch_size):
        if run.dry_run:
            setattr(run.report, counter, getattr(run.report, counter) + len(rows))
            run.report.bytes_freed += sum(size or 0 for _, _, size in rows)
            continue
        with transaction.atomic():
            ids = set(_locked(queryset, [pk for pk, _, _ in rows]))
            Inspection.objects.filter(pk__in=ids).update(image="", image_deleted_at=timezone.now())
            gone = [row for row in rows if row[0] in ids]
            freed = sum(size or 0 for _, _, size in gone)
            _count(run, images_deleted=len(gone), bytes_freed=freed)
        errors = _delete_files(run, [name for _, name, _ in gone])
        if errors:
            _count(run, file_errors=errors)
        setattr(run.report, counter, getattr(run.report, counter) + len(gone))
        run.report.bytes_freed += freed
        run.report.file_errors += errors
        run.beat(f"{run.plant.code}: {run.report.images} image(s) removed")
        run.rest()


def _remove_rows(run: _Run, queryset: QuerySet) -> None:
    for rows in _batches(queryset, run.batch_size):
        if run.dry_run:
            run.report.rows += len(rows)  # their images: counted by the kept images' stage
            continue
        with transaction.atomic():
            ids = set(_locked(queryset, [pk for pk, _, _ in rows]))
            _delete_rows(ids)
            gone = [row for row in rows if row[0] in ids]
            files = [(name, size) for _, name, size in gone if name]
            freed = sum(size or 0 for _, size in files)
            _count(run, images_deleted=len(files), rows_deleted=len(gone), bytes_freed=freed)
        errors = _delete_files(run, [name for name, _ in files])
        if errors:
            _count(run, file_errors=errors)
        run.report.rows += len(gone)
        run.report.bytes_freed += freed
        run.report.file_errors += errors
        run.beat(f"{run.plant.code}: {run.report.rows} row(s) removed")
        run.rest()


def _delete_rows(ids: set[int]) -> None:
    """DELETE the frames and their verifications by id, in plain SQL.

    Django's delete() would first load every row to look for related ones (four
    fifths of the time at 500 rows a batch); the database's foreign keys still refuse
    a frame that anything else points at, which fails the run loudly.
    """
    if not ids:
        return
    marks = ", ".join(["%s"] * len(ids))
    values = sorted(ids)
    with transaction.get_connection().cursor() as cursor:
        for model, column in ((Verification, "inspection_id"), (Inspection, "id")):
            table = model._meta.db_table
            cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", values)  # noqa: S608 - model names


def _count(run: _Run, **amounts: int) -> None:
    """Add a batch's figures to the plant's counters of the day."""
    now = timezone.now()
    day, _ = RetentionDay.objects.get_or_create(plant=run.plant, day=now.date())
    RetentionDay.objects.filter(pk=day.pk).update(
        last_run_at=now, **{name: F(name) + value for name, value in amounts.items()}
    )


def apply_plant(
    plant: Plant,
    *,
    dry_run: bool = False,
    storage: Storage | None = None,
    batch_size: int | None = None,
    now: dt.datetime | None = None,
    heartbeat: Callable[[str], None] | None = None,
) -> PlantRetention:
    """Apply (or, in a dry run, count) one plant's policy."""
    policy = policy_for(plant)
    report = PlantRetention(plant=plant.code)
    if not policy.enabled:
        report.skipped = "policy disabled"
        return report
    now = now or timezone.now()
    run = _Run(
        plant=plant,
        storage=storage or default_storage,
        batch_size=batch_size or settings.LINESIGHT["RETENTION_BATCH_SIZE"],
        dry_run=dry_run,
        beat=heartbeat or (lambda message: None),
        report=report,
        pause=settings.LINESIGHT["RETENTION_PAUSE_SECONDS"],
    )
    _remove_images(run, pass_images_due(plant, policy, now), counter="passes_images")
    _remove_images(run, kept_images_due(plant, policy, now), counter="kept_images")
    _remove_rows(run, rows_due(plant, policy, now))
    if not dry_run:
        RetentionDay.objects.filter(plant=plant, day=now.date()).update(runs=F("runs") + 1)
    return report


def retention_apply(
    *,
    dry_run: bool = False,
    plants: list[Plant] | None = None,
    storage: Storage | None = None,
    batch_size: int | None = None,
    now: dt.datetime | None = None,
    heartbeat: Callable[[str], None] | None = None,
) -> RetentionReport:
    """Apply every plant's policy (or only ``plants``'); a dry run changes nothing."""
    started = timezone.now()
    report = RetentionReport(dry_run=dry_run)
    for plant in plants if plants is not None else Plant.objects.order_by("code"):
        report.plants.append(
            apply_plant(
                plant,
                dry_run=dry_run,
                storage=storage,
                batch_size=batch_size,
                now=now,
                heartbeat=heartbeat,
            )
        )
        if not dry_run:
            storage_measure(plant)
    report.seconds = round((timezone.now() - started).total_seconds(), 3)
    logger.info("%s (%.1f s)", report.summary(), report.seconds)
    return report


def run_retention(job: Job) -> dict:
    """The "retention" job: every plant's policy, progress messages as its heartbeat."""
    payload = job.payload or {}

    def beat(message: str) -> None:
        job_progress(job, 0.5, message[:300])  # throttled; raises JobLost if swept

    plants = None
    if payload.get("plants"):
        plants = list(Plant.objects.filter(code__in=payload["plants"]).order_by("code"))
    report = retention_apply(dry_run=bool(payload.get("dry_run")), plants=plants, heartbeat=beat)
    return report.as_dict()
