"""Rollups: the inspection counts the reports read, kept exact by recomputing whole buckets.

A bucket is one plant-local capture day of one station. ``rollups_refresh``
(the periodic ``rollups_refresh`` job) finds the buckets touched since its
watermark, frames received and decisions made since then (a late decision on
an old frame touches that frame's bucket), and replaces each bucket's rollup
rows with a GROUP BY over its raw rows, a batch of buckets per transaction.
Nothing is ever added to or subtracted from a rollup row, so a rollup cannot
drift from the raw rows it was made of.

``received_at`` and ``created_at`` are stamped before their transaction
commits, so a row may become visible with a stamp a little older than the
refresh that missed it. Every refresh therefore looks back ``overlap()``
before its watermark, and the reports read every bucket touched in that
window from the raw rows (:func:`report_sources`): a report is exact and
current whatever the refresh's lag; the lag only moves work from the rollups
to the raw rows of the last few station-days.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import islice

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from common.jobs import job_progress
from inspection.choices import ReviewStatus
from inspection.models import Inspection, Verification
from reports import figures
from reports.models import CallRollup, DefectRollup, RollupState, VolumeRollup

STATE_NAME = "inspections"


@dataclass(frozen=True)
class RollupTable:
    """A rollup table: the inspection columns it keeps (its key), each count column with
    the condition on the raw rows it counts, and which raw rows it holds at all."""

    model: type
    keys: tuple[str, ...]
    columns: dict[str, Q | None]
    where: Q | None = None


# The report filters' columns, kept by every rollup.
KEY_FIELDS = (
    "local_date",
    "station_id",
    "line_id",
    "product_id",
    "model_version_id",
    "shift_id",
    "shift_date",
)
VOLUME = RollupTable(VolumeRollup, KEY_FIELDS, figures.VOLUME_CONDITIONS)
DEFECTS = RollupTable(
    DefectRollup,
    (*KEY_FIELDS, "final_defect_type_id", "final_is_defect"),
    {"confirmed": figures.VERIFIED, "awaiting_review": figures.PENDING},
    where=figures.DEFECTIVE & Q(review_status__in=[ReviewStatus.VERIFIED, ReviewStatus.PENDING]),
)
CALLS = RollupTable(
    CallRollup,
    (*KEY_FIELDS, "defect_type_id", "final_defect_type_id", "final_is_defect"),
    {
        "frames": None,
        "verified": figures.VERIFIED,
        "sampled_verified": figures.SAMPLED_PASS_REVIEWED,
    },
)
TABLES = (VOLUME, DEFECTS, CALLS)
BATCH_BUCKETS = 50
# Past this many touched station-days, a report reads everything from the raw rows
# (the rollups are far behind: the refresh job is not running).
TAIL_MAX_BUCKETS = 400

Bucket = tuple[dt.date, int]  # (local_date, station id)


def _batched(items: Iterable, size: int) -> Iterator[tuple]:
    iterator = iter(items)
    while chunk := tuple(islice(iterator, size)):
        yield chunk


def overlap() -> dt.timedelta:
    """How far before its watermark a refresh (and a report) looks for touched buckets."""
    return dt.timedelta(seconds=settings.LINESIGHT["ROLLUP_OVERLAP_SECONDS"])


def _state() -> RollupState:
    return RollupState.objects.get_or_create(name=STATE_NAME)[0]


def rolled_up_to() -> dt.datetime | None:
    """The watermark: rows received and decisions made before it are in the rollups."""
    return (
        RollupState.objects.filter(name=STATE_NAME).values_list("rolled_up_to", flat=True).first()
    )


def touched_buckets(since: dt.datetime | None, *, dates: tuple | None = None) -> set[Bucket]:
    """Buckets with a frame received or a decision made at or after ``since`` (None: all).

    ``dates`` (first, last) keeps only buckets of those capture days.
    """
    frames = Inspection.objects.all()
    decided = Verification.objects.all()
    if since is not None:
        frames = frames.filter(received_at__gte=since)
        decided = decided.filter(created_at__gte=since)
    if dates is not None:
        frames = frames.filter(local_date__range=dates)
        decided = decided.filter(inspection__local_date__range=dates)
    buckets = set(frames.values_list("local_date", "station_id").distinct().order_by())
    if since is not None:
        buckets |= set(
            decided.values_list("inspection__local_date", "inspection__station_id")
            .distinct()
            .order_by()
        )
    return buckets


def buckets_q(buckets: Iterable[Bucket], prefix: str = "") -> Q:
    """A condition selecting the rows of ``buckets`` (one OR term per day)."""
    by_date: dict[dt.date, list[int]] = defaultdict(list)
    for day, station in buckets:
        by_date[day].append(station)
    q = Q()
    for day, stations in sorted(by_date.items()):
        q |= Q(**{f"{prefix}local_date": day, f"{prefix}station_id__in": sorted(stations)})
    return q


def _count(condition: Q | None) -> Count:
    return Count("id", filter=condition) if condition is not None else Count("id")


def _replace_in(table: RollupTable, where: Q) -> int:
    """Replace ``table``'s rows of the buckets ``where`` selects by a GROUP BY of their raw
    rows: one DELETE and one INSERT ... SELECT. Call inside a transaction."""
    table.model.objects.filter(where).delete()
    raw = Inspection.objects.filter(where)
    if table.where is not None:
        raw = raw.filter(table.where)
    counts = {f"rollup_{name}": _count(cond) for name, cond in table.columns.items()}
    grouped = raw.values(*table.keys).annotate(**counts).order_by()
    sql, params = grouped.query.sql_with_params()
    meta = table.model._meta
    columns = ", ".join(
        connection.ops.quote_name(meta.get_field(name).column)
        for name in (*table.keys, *table.columns)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {meta.db_table} ({columns}) {sql}", params)
        return cursor.rowcount


def _replace(where: Q) -> int:
    """Replace the buckets ``where`` selects in every rollup table; rows written."""
    return sum(_replace_in(table, where) for table in TABLES)


def _lock_state() -> None:
    """Serialise refreshes and rebuilds: one writer of rollups at a time."""
    RollupState.objects.select_for_update().get(name=STATE_NAME)


def refresh_buckets(
    buckets: Iterable[Bucket],
    *,
    batch: int = BATCH_BUCKETS,
    on_batch: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute ``buckets`` from the raw rows, ``batch`` buckets per transaction;
    ``on_batch(done, total)`` after each."""
    _state()
    ordered = sorted(buckets)
    done = 0
    for chunk in _batched(ordered, batch):
        with transaction.atomic():
            _lock_state()
            _replace(buckets_q(chunk))
        done += len(chunk)
        if on_batch is not None:
            on_batch(done, len(ordered))
    return done


def rollups_refresh(
    *, batch: int = BATCH_BUCKETS, on_batch: Callable[[int, int], None] | None = None
) -> dict:
    """Bring the rollups up to now: recompute the buckets touched since the watermark.

    The new watermark is this run's start; the next run looks back ``overlap()``
    before it, for rows whose transaction committed after this run read.
    """
    started = timezone.now()
    state = _state()
    mark = state.rolled_up_to
    buckets = touched_buckets(None if mark is None else mark - overlap())
    refreshed = refresh_buckets(buckets, batch=batch, on_batch=on_batch)
    RollupState.objects.filter(pk=state.pk).filter(
        Q(rolled_up_to__isnull=True) | Q(rolled_up_to__lt=started)
    ).update(rolled_up_to=started)
    return {"buckets": refreshed, "rolled_up_to": started.isoformat()}


def rollups_rebuild(
    *, date_from: dt.date | None = None, date_to: dt.date | None = None
) -> Iterator[tuple[dt.date, int]]:
    """Recompute whole capture days from the raw rows, one transaction per day.

    Yields (day, rollup rows written). Without a range, every day that has raw
    rows or rollups, and the watermark starts at the rebuild's start if unset.
    """
    started = timezone.now()
    state = _state()
    first, last = date_from, date_to
    if first is None or last is None:
        spans = [
            model.objects.aggregate(first=Min("local_date"), last=Max("local_date"))
            for model in (Inspection, VolumeRollup)
        ]
        firsts = [span["first"] for span in spans if span["first"] is not None]
        lasts = [span["last"] for span in spans if span["last"] is not None]
        if not firsts:
            return
        first = first or min(firsts)
        last = last or max(lasts)
    day = first
    while day <= last:
        with transaction.atomic():
            _lock_state()
            yield day, _replace(Q(local_date=day))
        day += dt.timedelta(days=1)
    if date_from is None and date_to is None:
        RollupState.objects.filter(pk=state.pk, rolled_up_to__isnull=True).update(
            rolled_up_to=started
        )


def run_rollups_refresh(job) -> dict:
    """The ``rollups_refresh`` job (periodic, see ``settings.PERIODIC_JOBS``).

    Its progress is its heartbeat: the first run after an upgrade builds every bucket.
    """

    def progress(done: int, total: int) -> None:
        job_progress(job, done / total, f"{done} of {total} station-days")

    return rollups_refresh(on_batch=progress)


# --- What a report reads ----------------------------------------------------------


@dataclass(frozen=True)
class ReportSources:
    """Where a report's inspection counts come from: the rollups outside ``tail``, and
    the raw rows of the ``tail`` buckets (touched since the watermark, minus the overlap).

    ``raw_only`` when there is no watermark yet or the tail is too long to list:
    then every figure comes from the raw rows. ``current`` is False when the
    reports read only rollups (``LINESIGHT_REPORTS_CURRENT`` off): figures stand
    at ``rolled_up_to``.
    """

    rolled_up_to: dt.datetime | None
    tail: frozenset
    raw_only: bool
    current: bool = True

    def lag_seconds(self, now: dt.datetime | None = None) -> float | None:
        if self.rolled_up_to is None:
            return None
        return max(((now or timezone.now()) - self.rolled_up_to).total_seconds(), 0.0)

    def status(self) -> dict:
        """What the page and the API say about the rollups behind the figures."""
        return {
            "rolled_up_to": self.rolled_up_to,
            "lag_seconds": self.lag_seconds(),
            "raw_station_days": None if self.raw_only else len(self.tail),
            "raw_only": self.raw_only,
            "current": self.current,
        }


_raw_only: ContextVar[bool] = ContextVar("reports_raw_only", default=False)
SOURCES_ATTRIBUTE = "_report_sources"
RAW_ONLY = ReportSources(rolled_up_to=None, tail=frozenset(), raw_only=True)


@contextmanager
def raw_rows_only() -> Iterator[None]:
    """Within this block every figure is counted from the raw rows: the plain raw query
    the exactness test and the benchmark compare the rollups with."""
    token = _raw_only.set(True)
    try:
        yield
    finally:
        _raw_only.reset(token)


def report_sources(filters) -> ReportSources:
    """Where the figures of ``filters`` (a ``ReportFilters``) come from; asked once per filters
    object, so a report's tables all read the same split."""
    if _raw_only.get():
        return RAW_ONLY
    # Kept on the object itself (as cached_property does), never shared between equal
    # filters: a later request must look at the watermark again.
    found = filters.__dict__.get(SOURCES_ATTRIBUTE)
    if found is None:
        found = filters.__dict__[SOURCES_ATTRIBUTE] = _sources_now(
            filters.date_from, filters.date_to
        )
    return found


def _sources_now(date_from: dt.date, date_to: dt.date) -> ReportSources:
    mark = rolled_up_to()
    if mark is None:
        return RAW_ONLY
    if not settings.LINESIGHT["REPORTS_CURRENT"]:
        return ReportSources(rolled_up_to=mark, tail=frozenset(), raw_only=False, current=False)
    tail = touched_buckets(mark - overlap(), dates=(date_from, date_to))
    if len(tail) > TAIL_MAX_BUCKETS:
        return ReportSources(rolled_up_to=mark, tail=frozenset(), raw_only=True)
    return ReportSources(rolled_up_to=mark, tail=frozenset(tail), raw_only=False)


def split(
    sources: ReportSources, rollups: QuerySet, raw: QuerySet
) -> tuple[QuerySet | None, QuerySet | None]:
    """The rollup rows and raw rows a report counts (None: nothing from that side)."""
    if sources.raw_only:
        return None, raw
    if not sources.tail:
        return rollups, None
    return rollups.exclude(buckets_q(sources.tail)), raw.filter(buckets_q(sources.tail))
