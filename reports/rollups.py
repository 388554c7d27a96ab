"""Rollups: the inspection counts the reports read, kept exact by recomputing whole buckets.

Two grains. Every capture day is kept by station-day (``VolumeRollup``,
``DefectRollup``, ``CallRollup``); the recent days (from
``RollupState.hourly_from``, the newest ``HOURLY_DAYS`` capture days) are kept
by station-hour as well (the ``Hourly*`` tables; the hour is the capture
time truncated to the UTC hour, so a DST change never splits or merges one).

``rollups_refresh`` (the periodic ``rollups_refresh`` job) finds the
station-hours touched since its watermark, frames received and decisions made
since then (a late decision on an old frame touches that frame's hour), and
replaces each bucket's rollup rows with a GROUP BY over its raw rows, a batch
per transaction: a touched hour of a recent day is recomputed from its raw
rows and its station-day from the day's hourly rows; a touched hour of an
older day recomputes the whole station-day from the raw rows. Nothing is
ever added to or subtracted from a rollup row, so a rollup cannot drift from
the raw rows it was made of.

``received_at`` and ``created_at`` are stamped before their transaction
commits, so a row may become visible with a stamp a little older than the
refresh that missed it. Every refresh therefore looks back ``overlap()``
before its watermark, and the reports read every bucket touched in that
window from the raw rows (:func:`report_sources`), so a report is exact and
current whatever the refresh's lag. What a report reads (:func:`split`): the
daily rollups of every untouched station-day; for a touched station-day of a
recent day, its hourly rollups of the untouched hours and the raw rows of
the touched hours only (a live line touches the hour it is writing: a few
thousand rows, not the ~170k of a busy day); for a touched station-day older
than the hourly window, its raw rows.

The window moves forward with the newest capture day the refresh sees
(never past tomorrow's UTC date: a device's wrong clock cannot push it away);
hourly rows of days that left the window are deleted at the next move, so a
report that read the old window never loses rows under it.
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
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from common.jobs import job_progress
from inspection.choices import ReviewStatus
from inspection.models import Inspection, Verification
from reports import figures
from reports.models import (
    CallRollup,
    DefectRollup,
    HourlyCallRollup,
    HourlyDefectRollup,
    HourlyVolumeRollup,
    RollupState,
    VolumeRollup,
)

STATE_NAME = "inspections"


@dataclass(frozen=True)
class RollupTable:
    """A rollup table: the inspection columns it keeps (its key), each count column with
    the condition on the raw rows it counts, and which raw rows it holds at all; ``model``
    by station-day, ``hourly`` by station-hour (same columns plus ``hour``)."""

    model: type
    hourly: type
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
VOLUME = RollupTable(VolumeRollup, HourlyVolumeRollup, KEY_FIELDS, figures.VOLUME_CONDITIONS)
DEFECTS = RollupTable(
    DefectRollup,
    HourlyDefectRollup,
    (*KEY_FIELDS, "final_defect_type_id", "final_is_defect"),
    {"confirmed": figures.VERIFIED, "awaiting_review": figures.PENDING},
    where=figures.DEFECTIVE & Q(review_status__in=[ReviewStatus.VERIFIED, ReviewStatus.PENDING]),
)
CALLS = RollupTable(
    CallRollup,
    HourlyCallRollup,
    (*KEY_FIELDS, "defect_type_id", "final_defect_type_id", "final_is_defect"),
    {
        "frames": None,
        "verified": figures.VERIFIED,
        "sampled_verified": figures.SAMPLED_PASS_REVIEWED,
    },
)
TABLES = (VOLUME, DEFECTS, CALLS)
BATCH_BUCKETS = 50  # station-days per transaction
# Past this many touched station-hours, a report reads everything from the raw rows
# (the rollups are far behind: the refresh job is not running).
TAIL_MAX_BUCKETS = 1000
# How many of the newest capture days are kept by station-hour as well.
HOURLY_DAYS = 3
HOUR = dt.timedelta(hours=1)

Bucket = tuple[dt.date, int]  # (local_date, station id): a station-day
HourBucket = tuple[dt.date, int, dt.datetime]  # (local_date, station id, UTC hour)


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


def capture_hour(field: str = "captured_at") -> TruncHour:
    """The capture time truncated to its UTC hour: the hour of an hourly bucket."""
    return TruncHour(field, tzinfo=dt.UTC)


def touched_buckets(since: dt.datetime | None, *, dates: tuple | None = None) -> set[HourBucket]:
    """Station-hours with a frame received or a decision made at or after ``since``
    (None: all).

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
    buckets = set(
        frames.annotate(bucket_hour=capture_hour())
        .values_list("local_date", "station_id", "bucket_hour")
        .distinct()
        .order_by()
    )
    if since is not None:
        buckets |= set(
            decided.annotate(bucket_hour=capture_hour("inspection__captured_at"))
            .values_list("inspection__local_date", "inspection__station_id", "bucket_hour")
            .distinct()
            .order_by()
        )
    return buckets


def station_days(buckets: Iterable[HourBucket]) -> set[Bucket]:
    return {(day, station) for day, station, _ in buckets}


def buckets_q(buckets: Iterable[Bucket], prefix: str = "") -> Q:
    """A condition selecting the rows of station-days ``buckets`` (one OR term per day)."""
    by_date: dict[dt.date, list[int]] = defaultdict(list)
    for day, station in buckets:
        by_date[day].append(station)
    q = Q()
    for day, stations in sorted(by_date.items()):
        q |= Q(**{f"{prefix}local_date": day, f"{prefix}station_id__in": sorted(stations)})
    return q


def hours_q(buckets: Iterable[HourBucket], *, rollup: bool) -> Q:
    """A condition selecting station-hours ``buckets``: of an hourly rollup table
    (``rollup``) or of the raw rows (by capture time). One OR term per hour."""
    by_hour: dict[tuple, list[int]] = defaultdict(list)
    for day, station, hour in buckets:
        by_hour[(day, hour)].append(station)
    q = Q()
    for (day, hour), stations in sorted(by_hour.items()):
        if rollup:
            q |= Q(local_date=day, hour=hour, station_id__in=sorted(stations))
        else:
            q |= Q(
                local_date=day,
                station_id__in=sorted(stations),
                captured_at__gte=hour,
                captured_at__lt=hour + HOUR,
            )
    return q


def _count(condition: Q | None) -> Count:
    return Count("id", filter=condition) if condition is not None else Count("id")


def _insert(table_model: type, names: tuple[str, ...], grouped: QuerySet) -> int:
    """INSERT INTO the table's ``names`` columns the rows of ``grouped`` (same order)."""
    sql, params = grouped.query.sql_with_params()
    meta = table_model._meta
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in names)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {meta.db_table} ({columns}) {sql}", params)
        return cursor.rowcount


def _raw_counts(table: RollupTable) -> dict:
    return {f"rollup_{name}": _count(cond) for name, cond in table.columns.items()}


def _raw(table: RollupTable, where: Q) -> QuerySet:
    raw = Inspection.objects.filter(where)
    return raw.filter(table.where) if table.where is not None else raw


def _replace_in(table: RollupTable, where: Q) -> int:
    """Replace ``table``'s daily rows of the station-days ``where`` selects by a GROUP BY of
    their raw rows: one DELETE and one INSERT ... SELECT. Call inside a transaction."""
    table.model.objects.filter(where).delete()
    grouped = _raw(table, where).values(*table.keys).annotate(**_raw_counts(table)).order_by()
    return _insert(table.model, (*table.keys, *table.columns), grouped)


def _replace_hours_in(table: RollupTable, hours: list[HourBucket]) -> int:
    """Replace ``table``'s hourly rows of station-hours ``hours`` from their raw rows."""
    table.hourly.objects.filter(hours_q(hours, rollup=True)).delete()
    grouped = (
        _raw(table, hours_q(hours, rollup=False))
        .annotate(hour=capture_hour())  # an annotation: selected after the keys
        .values(*table.keys, "hour")
        .annotate(**_raw_counts(table))
        .order_by()
    )
    return _insert(table.hourly, (*table.keys, "hour", *table.columns), grouped)


def _replace_days_from_hours_in(table: RollupTable, where: Q) -> int:
    """Replace ``table``'s daily rows of the station-days ``where`` selects by the sums of
    their hourly rows (complete for every day of the hourly window)."""
    table.model.objects.filter(where).delete()
    sums = {f"rollup_{name}": Sum(name) for name in table.columns}
    grouped = table.hourly.objects.filter(where).values(*table.keys).annotate(**sums).order_by()
    return _insert(table.model, (*table.keys, *table.columns), grouped)


def _replace(where: Q) -> int:
    """Replace the station-days ``where`` selects in every daily table, from the raw rows."""
    return sum(_replace_in(table, where) for table in TABLES)


def _replace_hours(hours: list[HourBucket]) -> int:
    """Replace station-hours ``hours`` (of days in the hourly window) in every hourly table,
    then their station-days in every daily table from the hourly rows."""
    written = sum(_replace_hours_in(table, hours) for table in TABLES)
    where = buckets_q(station_days(hours))
    return written + sum(_replace_days_from_hours_in(table, where) for table in TABLES)


def _hours_of_days(where: Q) -> list[HourBucket]:
    """Every station-hour with raw rows among the rows ``where`` selects."""
    return sorted(
        Inspection.objects.filter(where)
        .annotate(bucket_hour=capture_hour())
        .values_list("local_date", "station_id", "bucket_hour")
        .distinct()
        .order_by()
    )


def _replace_days(where: Q, hourly_from: dt.date | None) -> int:
    """Replace whole capture days (the rows ``where`` selects, a day condition) at the grain
    their day is kept: the hourly window's days by station-hour and from those hours,
    older days from the raw rows. Call inside a transaction."""
    if hourly_from is None:
        return _replace(where)
    older = _replace(where & Q(local_date__lt=hourly_from))
    recent = where & Q(local_date__gte=hourly_from)
    for table in TABLES:
        table.hourly.objects.filter(recent).delete()
        table.model.objects.filter(recent).delete()
    hours = _hours_of_days(recent)
    return older + (_replace_hours(hours) if hours else 0)


def _lock_state() -> RollupState:
    """Serialise refreshes and rebuilds: one writer of rollups at a time."""
    return RollupState.objects.select_for_update().get(name=STATE_NAME)


def _analyze(models: Iterable[type]) -> None:
    """Refresh PostgreSQL's statistics of tables just rewritten whole: without them the
    planner takes a fresh rollup table for a few rows and joins it row by row.
    (Autovacuum keeps them afterwards; SQLite plans without.)"""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _window_start(newest: dt.date) -> dt.date:
    newest = min(newest, timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=1))
    return newest - dt.timedelta(days=HOURLY_DAYS - 1)


def _move_window(newest: dt.date | None) -> None:
    """Keep the newest ``HOURLY_DAYS`` capture days (up to ``newest``) by station-hour.

    The first time, builds the hourly rows of those days from the raw rows (one
    transaction: a report sees the window only once its rows are there). Later
    moves go forward only; the days behind the old start lose their hourly rows
    (days between the old and the new start keep theirs until the next move, so
    a report still reading the old window finds them).
    """
    if newest is None:
        return
    start = _window_start(newest)
    with transaction.atomic():
        state = _lock_state()
        if state.hourly_from is not None and start <= state.hourly_from:
            return
        first = state.hourly_from is None
        if first:
            _replace_days(Q(local_date__gte=start), start)
        else:
            for table in TABLES:
                table.hourly.objects.filter(local_date__lt=state.hourly_from).delete()
        RollupState.objects.filter(pk=state.pk).update(hourly_from=start)
    if first:
        _analyze(table.hourly for table in TABLES)


def refresh_buckets(
    buckets: Iterable[HourBucket],
    *,
    batch: int = BATCH_BUCKETS,
    on_batch: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute station-hours ``buckets`` from the raw rows, ``batch`` station-days per
    transaction; ``on_batch(done, total)`` after each, in station-hours."""
    _state()
    hours = sorted(set(buckets))
    _move_window(max((day for day, _, _ in hours), default=None))
    by_day: dict[Bucket, list[HourBucket]] = defaultdict(list)
    for bucket in hours:
        by_day[bucket[:2]].append(bucket)
    done = 0
    for chunk in _batched(sorted(by_day), batch):
        with transaction.atomic():
            hourly_from = _lock_state().hourly_from
            recent = [day for day in chunk if hourly_from is not None and day[0] >= hourly_from]
            older = [day for day in chunk if day not in recent]
            if older:
                _replace(buckets_q(older))
            if recent:
                _replace_hours([hour for day in recent for hour in by_day[day]])
        done += sum(len(by_day[day]) for day in chunk)
        if on_batch is not None:
            on_batch(done, len(hours))
    return done


def rollups_refresh(
    *, batch: int = BATCH_BUCKETS, on_batch: Callable[[int, int], None] | None = None
) -> dict:
    """Bring the rollups up to now: recompute the station-hours touched since the watermark.

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
    """Recompute whole capture days from the raw rows, one transaction per day, each day
    at the grain it is kept (the hourly window's days by station-hour too).

    Yields (day, rollup rows written). Without a range, every day that has raw
    rows or rollups; then the watermark starts at the rebuild's start if unset,
    and the hourly window at the newest day if unset.
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
    if date_from is None and date_to is None:
        _move_window(last)
    day = first
    while day <= last:
        with transaction.atomic():
            hourly_from = _lock_state().hourly_from
            yield day, _replace_days(Q(local_date=day), hourly_from)
        day += dt.timedelta(days=1)
    if date_from is None and date_to is None:
        RollupState.objects.filter(pk=state.pk, rolled_up_to__isnull=True).update(
            rolled_up_to=started
        )
        _analyze(model for table in TABLES for model in (table.model, table.hourly))


def run_rollups_refresh(job) -> dict:
    """The ``rollups_refresh`` job (periodic, see ``settings.PERIODIC_JOBS``).

    Its progress is its heartbeat: the first run after an upgrade builds every bucket.
    """

    def progress(done: int, total: int) -> None:
        job_progress(job, done / total, f"{done} of {total} station-hours")

    return rollups_refresh(on_batch=progress)


# --- What a report reads ----------------------------------------------------------


@dataclass(frozen=True)
class ReportSources:
    """Where a report's inspection counts come from: the rollups outside ``tail``, and
    the raw rows of the ``tail`` station-hours (touched since the watermark, minus the
    overlap), or of their whole station-days before ``hourly_from``.

    ``raw_only`` when there is no watermark yet or the tail is too long to list:
    then every figure comes from the raw rows. ``current`` is False when the
    reports read only rollups (``LINESIGHT_REPORTS_CURRENT`` off): figures stand
    at ``rolled_up_to``.
    """

    rolled_up_to: dt.datetime | None
    tail: frozenset  # of HourBucket
    raw_only: bool
    current: bool = True
    hourly_from: dt.date | None = None

    def lag_seconds(self, now: dt.datetime | None = None) -> float | None:
        if self.rolled_up_to is None:
            return None
        return max(((now or timezone.now()) - self.rolled_up_to).total_seconds(), 0.0)

    def _recent(self, day: dt.date) -> bool:
        return self.hourly_from is not None and day >= self.hourly_from

    @property
    def tail_hours(self) -> set[HourBucket]:
        """Touched station-hours of days kept by hour: their raw rows are read."""
        return {bucket for bucket in self.tail if self._recent(bucket[0])}

    @property
    def tail_days(self) -> set[Bucket]:
        """Touched station-days of days kept only by day: all their raw rows are read."""
        return {bucket[:2] for bucket in self.tail if not self._recent(bucket[0])}

    def status(self) -> dict:
        """What the page and the API say about the rollups behind the figures."""
        return {
            "rolled_up_to": self.rolled_up_to,
            "lag_seconds": self.lag_seconds(),
            "raw_station_days": None if self.raw_only else len(station_days(self.tail)),
            "raw_station_hours": None if self.raw_only else len(self.tail_hours),
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
    state = RollupState.objects.filter(name=STATE_NAME).values("rolled_up_to", "hourly_from")
    state = state.first() or {"rolled_up_to": None, "hourly_from": None}
    mark, hourly_from = state["rolled_up_to"], state["hourly_from"]
    if mark is None:
        return RAW_ONLY
    if not settings.LINESIGHT["REPORTS_CURRENT"]:
        return ReportSources(rolled_up_to=mark, tail=frozenset(), raw_only=False, current=False)
    tail = touched_buckets(mark - overlap(), dates=(date_from, date_to))
    if len(tail) > TAIL_MAX_BUCKETS:
        return ReportSources(rolled_up_to=mark, tail=frozenset(), raw_only=True)
    return ReportSources(
        rolled_up_to=mark, tail=frozenset(tail), raw_only=False, hourly_from=hourly_from
    )


def split(
    sources: ReportSources, table: RollupTable, rollup_filter: Q, raw: QuerySet
) -> list[tuple[QuerySet, bool]]:
    """The querysets a report counts, each with whether it holds rollup rows (summed) or
    raw rows (counted): ``rollup_filter`` applies to the rollup tables, ``raw`` is the
    raw rows of the whole selection."""
    daily = table.model.objects.filter(rollup_filter)
    if sources.raw_only:
        return [(raw, False)]
    if not sources.tail:
        return [(daily, True)]
    hours, days = sources.tail_hours, sources.tail_days
    parts = [(daily.exclude(buckets_q(station_days(sources.tail))), True)]
    raw_q = Q()
    if hours:
        hourly = table.hourly.objects.filter(rollup_filter).filter(buckets_q(station_days(hours)))
        parts.append((hourly.exclude(hours_q(hours, rollup=True)), True))
        raw_q |= hours_q(hours, rollup=False)
    if days:
        raw_q |= buckets_q(days)
    parts.append((raw.filter(raw_q), False))
    return parts
