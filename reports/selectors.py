"""Report tables: every count is made by the database, one aggregate query per table and source.

Inspection figures are summed from the rollups (``reports.models.VolumeRollup``,
``DefectRollup``, ``CallRollup``) plus, for what was touched since the
rollups' watermark, the hourly rollups of the untouched hours and the raw
inspections of the touched ones (:func:`reports.rollups.split` decides which):
the parts are added per group in :func:`_counts`. The inspectors table and
the row exports still read the raw rows (see :func:`inspectors`).
(Volume tables then read the names of their few groups from master data.)
Each function takes validated :class:`~reports.filters.ReportFilters` and
returns plain rows (dicts of dates, strings and numbers) that the page, the
API and the workbook show as they are. Rates are computed from the counts by
:mod:`reports.figures` and nowhere else.
"""

import datetime as dt
import weakref
from collections.abc import Iterator

from django.db import connection
from django.db.models import (
    Avg,
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    When,
)
from django.db.models.functions import TruncHour

from common.models import Job, JobState
from inspection.choices import Decision
from inspection.models import Inspection, Verification
from masterdata.choices import SEVERITY_RANK
from masterdata.models import DefectType, Line, Product, Shift, Station
from models_registry.evaluation.models import Evaluation
from models_registry.models import version_label
from reports import figures, rollups
from reports.filters import ReportFilters
from reports.kinds import REPORT_EXPORT


def inspections(filters: ReportFilters) -> QuerySet[Inspection]:
    """The inspections the filters select (capture date in the plant's zone, and the rest)."""
    return Inspection.objects.filter(filters.inspection_q(date_index=date_index_pays(filters)))


def verifications(filters: ReportFilters) -> QuerySet[Verification]:
    """Every decision (superseded and undone ones included) on the inspections selected,
    each with who decided the frame next and when (see :data:`UNDONE`)."""
    return Verification.objects.filter(
        filters.inspection_q("inspection__", date_index=date_index_pays(filters))
    ).annotate(next_inspector=_next_decision("inspector"), next_at=_next_decision("created_at"))


def _next_decision(field: str) -> Subquery:
    """``field`` of the decision that followed this one on its frame (newest wins ties by id)."""
    later = Verification.objects.filter(inspection=OuterRef("inspection")).filter(
        Q(created_at__gt=OuterRef("created_at"))
        | Q(created_at=OuterRef("created_at"), id__gt=OuterRef("id"))
    )
    return Subquery(later.order_by("created_at", "id").values(field)[:1])


# An undo hands a decision back to its inspector, and only their next decision on
# the frame (superseding it) makes the undo take effect; pressing "keep" leaves it
# in force. So a decision followed by one of the same inspector is the undone one,
# and a decision followed by another inspector's was overruled, not undone.
UNDONE = Q(next_inspector=F("inspector"))
IN_FORCE_OR_OVERRULED = Q(next_inspector__isnull=True) | ~UNDONE


# SQLite has no statistics on how dates spread, so it reads a range of any
# width through the capture-date index, one random row lookup per frame: a
# range holding the whole of a 1M-row table then takes seconds where a plain
# scan takes a fraction of one. PostgreSQL plans from its statistics.
SCAN_SHARE = 0.25
# The answer for each filters object, so a report's tables ask the database once.
_date_index_answers: "weakref.WeakKeyDictionary[ReportFilters, bool]" = weakref.WeakKeyDictionary()


def date_index_pays(filters: ReportFilters) -> bool:
    """Whether the filters' date range is narrow enough for the capture-date index to pay.

    On SQLite one aggregate query, remembered while the filters object lives (equal
    filters share the answer). Only the raw rows need it: it first settles where the
    figures come from (:func:`reports.rollups.report_sources`, one query, once per
    filters object), and with rollups the range read raw is a few station-days.
    """
    if connection.vendor != "sqlite" or not rollups.report_sources(filters).raw_only:
        return True
    answer = _date_index_answers.get(filters)
    if answer is None:
        answer = _date_index_answers[filters] = _narrow_enough(filters.date_from, filters.date_to)
    return answer


def _narrow_enough(date_from: dt.date, date_to: dt.date) -> bool:
    span = Inspection.objects.aggregate(first=Min("local_date"), last=Max("local_date"))
    if span["first"] is None:
        return True
    table_days = (span["last"] - span["first"]).days + 1
    covered = (min(date_to, span["last"]) - max(date_from, span["first"])).days + 1
    return covered < SCAN_SHARE * table_days


# --- Counting from rollups and raw rows ------------------------------------------


Measure = tuple[str, Q | None]  # (count column of the rollup table, condition on its key)


def _aggregates(table: rollups.RollupTable, measures: dict[str, Measure], rolled_up: bool):
    """Each measure as an aggregate: a sum of the rollup's count column under the key
    condition, or the raw rows counted under the column's condition and the key's."""
    aggregates = {}
    for name, (column, key_condition) in measures.items():
        if rolled_up:
            aggregate = Sum(column, filter=key_condition) if key_condition else Sum(column)
        else:
            condition = table.columns[column]
            if key_condition is not None:
                condition = key_condition if condition is None else condition & key_condition
            aggregate = Count("id", filter=condition) if condition is not None else Count("id")
        # Annotations may not share a field's name (the rollups' "frames").
        aggregates[f"n_{name}"] = aggregate
    return aggregates


def _counts(
    filters: ReportFilters,
    table: rollups.RollupTable,
    group: tuple[str, ...],
    measures: dict[str, Measure],
    *,
    where: Q | None = None,
) -> list[dict]:
    """Inspections of the selection counted per ``group``, for each measure.

    One aggregate query over ``table``'s daily rollups, one over its hourly
    rollups of the touched recent station-days, and one over the raw rows it
    does not hold yet (the same rows it would hold: ``table.where``), as
    :func:`reports.rollups.split` says; the counts of a group are added. ``where`` is a condition
    on the table's key. Rows are unordered; with no ``group``, one row of totals.
    """
    sources = rollups.report_sources(filters)
    date_index = date_index_pays(filters)
    where = where if where is not None else Q()
    raw = Inspection.objects.filter(filters.inspection_q(date_index=date_index)).filter(where)
    if table.where is not None:
        raw = raw.filter(table.where)
    parts = rollups.split(sources, table, filters.inspection_q() & where, raw)
    merged: dict[tuple, dict] = {}
    for queryset, rolled_up in parts:
        aggregates = _aggregates(table, measures, rolled_up)
        if group:
            rows = queryset.values(*group).annotate(**aggregates).order_by()
        else:
            rows = [queryset.aggregate(**aggregates)]
        for row in rows:
            key = tuple(row[name] for name in group)
            found = merged.setdefault(
                key, {**dict(zip(group, key, strict=True)), **dict.fromkeys(measures, 0)}
            )
            for name in measures:
                found[name] += row[f"n_{name}"] or 0
    if not group and not merged:
        merged[()] = dict.fromkeys(measures, 0)
    return list(merged.values())


VOLUME_MEASURES: dict[str, Measure] = {key: (key, None) for key in figures.VOLUME_CONDITIONS}


def rollup_status(filters: ReportFilters) -> dict:
    """How current the rollups behind the figures are (shown on the page and in the API)."""
    return rollups.report_sources(filters).status()


# --- Volume and quality -----------------------------------------------------


def totals(filters: ReportFilters) -> dict:
    """Frames, verdicts, reviews, defects and yields over the whole selection."""
    return figures.with_volume_rates(_counts(filters, rollups.VOLUME, (), VOLUME_MEASURES)[0])


# Volume tables group by the inspection's own columns (no join per frame);
# the names of the few groups are read afterwards from master data.
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "day": ("local_date",),
    "shift": ("shift_date", "shift"),
    "line": ("line",),
    "station": ("station",),
    "product": ("product",),
}
LAST = "\uffff"  # sorts groups without a name (no shift, no product) last


def _group_names(by: str, ids: set) -> dict:
    """Names of the groups of a volume table, by id (one small master-data query)."""
    ids = {pk for pk in ids if pk is not None}
    if by == "shift":
        rows = Shift.objects.filter(pk__in=ids).values("id", "name", "start", "plant__code")
        return {
            r["id"]: {"plant": r["plant__code"], "shift": r["name"], "_start": r["start"]}
            for r in rows
        }
    if by == "line":
        rows = Line.objects.filter(pk__in=ids).values("id", "code", "plant__code")
        return {r["id"]: {"plant": r["plant__code"], "line": r["code"]} for r in rows}
    if by == "station":
        rows = Station.objects.filter(pk__in=ids).values("id", "code", "line__code")
        return {r["id"]: {"line": r["line__code"], "station": r["code"]} for r in rows}
    if by == "product":
        rows = Product.objects.filter(pk__in=ids).values("id", "sku", "name")
        return {r["id"]: {"product": r["sku"], "product_name": r["name"]} for r in rows}
    return {}


EMPTY_GROUP = {
    "shift": {"plant": None, "shift": None, "_start": None},
    "product": {"product": None, "product_name": None},
}


def _volume_sort_key(by: str, row: dict) -> tuple:
    if by == "day":
        return (row["date"],)
    if by == "shift":
        start = row["_start"].isoformat() if row["_start"] else LAST
        return (row["shift_date"] or dt.date.max, row["plant"] or LAST, start)
    if by == "line":
        return (row["plant"], row["line"])
    if by == "station":
        return (row["line"], row["station"])
    return (row["product"] or LAST,)


def volume(filters: ReportFilters, *, by: str) -> list[dict]:
    """The volume and quality figures per day, shift, line, station or product.

    One aggregate query over the rollups (and the raw tail), plus the names of
    the groups. Days are listed for the whole range, with zeros where nothing
    was captured; the other tables list the groups that have frames.
    """
    group = DIMENSIONS[by]
    rows = _counts(filters, rollups.VOLUME, group, VOLUME_MEASURES)
    names = _group_names(by, {row[group[-1]] for row in rows})
    table = []
    for row in rows:
        counts = {key: row[key] for key in figures.VOLUME_COUNT_KEYS}
        if by == "day":
            labels = {"date": row["local_date"]}
        else:
            labels = dict(names.get(row[group[-1]]) or EMPTY_GROUP[by])
            if by == "shift":
                labels = {"shift_date": row["shift_date"], **labels}
        table.append(figures.with_volume_rates({**labels, **counts}))
    table.sort(key=lambda row: _volume_sort_key(by, row))
    for row in table:
        row.pop("_start", None)
    if by == "day":
        found = {row["date"]: row for row in table}
        zero = dict.fromkeys(figures.VOLUME_COUNT_KEYS, 0)
        table = [
            found.get(day) or figures.with_volume_rates({"date": day, **zero})
            for day in filters.days
        ]
    return table


# --- Defect Pareto ------------------------------------------------------------


def _pareto_order(row: dict) -> tuple:
    rank = SEVERITY_RANK.get(row["final_defect_type__severity"], len(SEVERITY_RANK))
    return (-row["confirmed"], rank, row["final_defect_type__code"] or LAST)


def pareto(filters: ReportFilters) -> list[dict]:
    """Confirmed defects by the inspector's final type, most frequent (then most severe) first."""
    rows = _counts(
        filters,
        rollups.DEFECTS,
        ("final_defect_type",),  # the id: no join per rollup row; the few names after
        {"confirmed": ("confirmed", None), "awaiting_review": ("awaiting_review", None)},
    )
    names = {
        defect["pk"]: defect
        for defect in DefectType.objects.filter(
            pk__in={row["final_defect_type"] for row in rows}
        ).values("pk", "code", "name", "severity")
    }
    for row in rows:
        defect = names.get(row.pop("final_defect_type"), {})
        for field in ("code", "name", "severity"):
            row[f"final_defect_type__{field}"] = defect.get(field)
    rows.sort(key=_pareto_order)
    total = sum(row["confirmed"] for row in rows)
    table, cumulative = [], 0
    for row in rows:
        cumulative += row["confirmed"]
        table.append(
            {
                "defect_type": row["final_defect_type__code"],
                "name": row["final_defect_type__name"],
                "severity": row["final_defect_type__severity"],
                "confirmed": row["confirmed"],
                "share": figures.ratio(row["confirmed"], total),
                "cumulative_share": figures.ratio(cumulative, total),
                "awaiting_review": row["awaiting_review"],
            }
        )
    return table


# --- Model against inspectors -------------------------------------------------


def _version_label(row: dict) -> str:
    return version_label(row["model_version__model__name"], row["model_version__number"])


VERSION_FIELDS = ("model_version", "model_version__model__name", "model_version__number")
VERSION_ORDER = ("model_version__model__name", "model_version__number")
# The figures of figures.py as counts of the call rollup: VERIFIED and
# SAMPLED_PASS_REVIEWED are its columns, the rest conditions on its key.
VERSION_MEASURES: dict[str, Measure] = {
    "frames": ("frames", None),
    "verified": ("verified", None),
    "agreed": ("verified", figures.AGREES),
    "defect_calls_verified": ("verified", figures.MODEL_CALLED_DEFECT),
    "false_calls": ("verified", figures.MODEL_CALLED_DEFECT & ~figures.DEFECTIVE),
    "sampled_passes_verified": ("sampled_verified", None),
    "escapes": ("sampled_verified", figures.DEFECTIVE),
}


def _verified_only(rows: list[dict], count: str) -> list[dict]:
    """The groups holding verified frames (as the raw query filtering on VERIFIED lists)."""
    return [row for row in rows if row[count]]


def model_versions(filters: ReportFilters) -> list[dict]:
    """Per model version: agreement, false calls, escapes, confusion matrix, precision/recall.

    Two queries: the per-version counts, and the verified frames counted by
    (version, model's type, inspector's type), from which the matrix and the
    per-type precision and recall are read.
    """
    summary = sorted(
        _counts(filters, rollups.CALLS, VERSION_FIELDS, VERSION_MEASURES),
        key=lambda row: tuple(row[field] for field in VERSION_ORDER),
    )
    cells = _verified_only(
        _counts(
            filters,
            rollups.CALLS,
            ("model_version", "defect_type__code", "final_defect_type__code"),
            {"frames": ("verified", None)},
        ),
        "frames",
    )
    by_version: dict[int, dict[tuple, int]] = {}
    for cell in cells:
        key = (cell["defect_type__code"], cell["final_defect_type__code"])
        by_version.setdefault(cell["model_version"], {})[key] = cell["frames"]
    table = []
    for row in summary:
        matrix_cells = by_version.get(row["model_version"], {})
        table.append(
            {
                "model_version": _version_label(row),
                "model_version_id": row["model_version"],
                "model": row["model_version__model__name"],
                "version": row["model_version__number"],
                "frames": row["frames"],
                "verified": row["verified"],
                "agreed": row["agreed"],
                "agreement": figures.ratio(row["agreed"], row["verified"]),
                "defect_calls_verified": row["defect_calls_verified"],
                "false_calls": row["false_calls"],
                "false_call_rate": figures.ratio(row["false_calls"], row["defect_calls_verified"]),
                "sampled_passes_verified": row["sampled_passes_verified"],
                "escapes": row["escapes"],
                "escape_rate": figures.ratio(row["escapes"], row["sampled_passes_verified"]),
                **_confusion(matrix_cells),
            }
        )
    return table


def _confusion(cells: dict[tuple[str | None, str | None], int]) -> dict:
    """The matrix (None = 'no defect', listed first) and precision/recall per defect type."""
    codes = sorted({code for pair in cells for code in pair if code is not None})
    labels = [None, *codes]
    matrix = [[cells.get((model, inspector), 0) for inspector in labels] for model in labels]
    per_type = []
    for i, code in enumerate(labels):
        if code is None:
            continue
        both = matrix[i][i]
        model_calls = sum(matrix[i])
        inspector_calls = sum(line[i] for line in matrix)
        per_type.append(
            {
                "defect_type": code,
                "model_calls": model_calls,
                "inspector_calls": inspector_calls,
                "both": both,
                "precision": figures.ratio(both, model_calls),
                "recall": figures.ratio(both, inspector_calls),
            }
        )
    return {"labels": labels, "matrix": matrix, "per_defect_type": per_type}


def agreement_by_day(filters: ReportFilters) -> list[dict]:
    """Agreement of each model version with the inspectors per capture day, to see drift."""
    rows = sorted(
        _verified_only(
            _counts(
                filters,
                rollups.CALLS,
                (*VERSION_FIELDS, "local_date"),
                {"verified": ("verified", None), "agreed": ("verified", figures.AGREES)},
            ),
            "verified",
        ),
        key=lambda row: (*(row[field] for field in VERSION_ORDER), row["local_date"]),
    )
    return [
        {
            "model_version": _version_label(row),
            "date": row["local_date"],
            "verified": row["verified"],
            "agreed": row["agreed"],
            "agreement": figures.ratio(row["agreed"], row["verified"]),
        }
        for row in rows
    ]


# --- Lab against line ----------------------------------------------------------

EVALUATION_FIELDS = (
    "version_id",
    "challenger_id",
    "split",
    "image_count",
    "snapshot__number",
    "snapshot__dataset__name",
    "job__finished",
)


def latest_evaluations(version_ids: list[int]) -> dict[int, dict]:
    """Each version's latest finished evaluation (as champion or challenger), by version id.

    One query; only the two figures are read out of the metrics, not the whole JSON.
    """
    rows = (
        Evaluation.objects.filter(job__state=JobState.DONE)
        .filter(Q(version_id__in=version_ids) | Q(challenger_id__in=version_ids))
        .values(
            *EVALUATION_FIELDS,
            accuracy=F("metrics__accuracy"),
            macro_f1=F("metrics__macro_f1"),
            challenger_accuracy=F("challenger_metrics__accuracy"),
            challenger_macro_f1=F("challenger_metrics__macro_f1"),
        )
        .order_by("-job__finished", "-id")
    )
    latest: dict[int, dict] = {}
    for row in rows:
        for version_id, prefix in ((row["version_id"], ""), (row["challenger_id"], "challenger_")):
            accuracy = row[f"{prefix}accuracy"]
            if version_id in version_ids and version_id not in latest and accuracy is not None:
                latest[version_id] = {
                    "dataset": row["snapshot__dataset__name"],
                    "snapshot": row["snapshot__number"],
                    "split": row["split"],
                    "images": row["image_count"],
                    "evaluated_at": row["job__finished"],
                    "lab_accuracy": accuracy,
                    "lab_macro_f1": row[f"{prefix}macro_f1"],
                }
    return latest


NO_EVALUATION = dict.fromkeys(
    ("dataset", "snapshot", "split", "images", "evaluated_at", "lab_accuracy", "lab_macro_f1")
)


def lab_against_line(versions: list[dict]) -> list[dict]:
    """Per version of :func:`model_versions`: its latest evaluation on a dataset next to its
    agreement with inspectors on the line, and the gap (lab minus line), to see drift."""
    latest = latest_evaluations([version["model_version_id"] for version in versions])
    table = []
    for version in versions:
        lab = latest.get(version["model_version_id"], NO_EVALUATION)
        line = version["agreement"]
        table.append(
            {
                "model_version": version["model_version"],
                **lab,
                "verified": version["verified"],
                "agreement": line,
                "lab_line_gap": (
                    lab["lab_accuracy"] - line
                    if lab["lab_accuracy"] is not None and line is not None
                    else None
                ),
            }
        )
    return table


# --- Inspectors ----------------------------------------------------------------


def inspectors(filters: ReportFilters) -> list[dict]:
    """Per inspector: decisions, pace, time from frame to decision, corrections.

    From the raw decisions, not the rollups: whether a decision was undone
    depends on the next decision on its frame, and active hours are distinct
    clock hours, neither of which adds up across buckets. Decisions are a
    small share of the frames (the doubtful ones and a sample).
    """
    frame_to_decision = ExpressionWrapper(
        F("created_at") - F("inspection__captured_at"), output_field=DurationField()
    )
    rows = (
        verifications(filters)
        .filter(IN_FORCE_OR_OVERRULED)  # an undone decision is not one the inspector stands by
        .values("inspector__username")
        .annotate(
            decisions=Count("id"),
            confirms=Count("id", filter=Q(decision=Decision.CONFIRM)),
            rejects=Count("id", filter=Q(decision=Decision.REJECT)),
            corrections=Count("id", filter=Q(decision=Decision.CORRECT)),
            active_hours=Count(TruncHour("created_at", tzinfo=filters.time_zone), distinct=True),
            avg_time_spent_ms=Avg("time_spent_ms"),
            avg_frame_to_decision=Avg(frame_to_decision),
        )
        .order_by("inspector__username")
    )
    return [
        {
            "inspector": row["inspector__username"],
            "decisions": row["decisions"],
            "confirms": row["confirms"],
            "rejects": row["rejects"],
            "corrections": row["corrections"],
            "active_hours": row["active_hours"],
            "decisions_per_hour": figures.ratio(row["decisions"], row["active_hours"]),
            "avg_frame_to_decision_s": _seconds(row["avg_frame_to_decision"]),
            "avg_time_spent_s": (
                row["avg_time_spent_ms"] / 1000 if row["avg_time_spent_ms"] is not None else None
            ),
            "correction_share": figures.ratio(row["corrections"], row["decisions"]),
            "reject_share": figures.ratio(row["rejects"], row["decisions"]),
        }
        for row in rows
    ]


def _seconds(value: dt.timedelta | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value / 1_000_000  # microseconds, as some backends average durations


# --- Row exports ---------------------------------------------------------------

RAW_FIELDS = (
    "id",
    "line__plant__time_zone",
    "captured_at",
    "local_date",
    "shift__name",
    "shift_date",
    "line__code",
    "station__code",
    "product__sku",
    "model_version__model__name",
    "model_version__number",
    "verdict",
    "confidence",
    "defect_type__code",
    "review_status",
    "review_reason",
    "final_defect_type__code",
    "final_is_defect",
    "verified_at",
    "serial",
    "lot",
)


def inspection_rows(filters: ReportFilters, *, chunk_size: int = 2000) -> Iterator[tuple]:
    """Every selected inspection as a tuple of ``RAW_FIELDS``, streamed from the database."""
    return (
        inspections(filters).order_by("id").values_list(*RAW_FIELDS).iterator(chunk_size=chunk_size)
    )


LOG_FIELDS = (
    "inspection__line__plant__time_zone",
    "created_at",
    "inspection_id",
    "inspection__captured_at",
    "inspection__line__code",
    "inspection__station__code",
    "inspection__model_version__model__name",
    "inspection__model_version__number",
    "inspection__defect_type__code",
    "inspector__username",
    "decision",
    "defect_type__code",
    "time_spent_ms",
    "comment",
    "undone_at",
)


def verification_rows(filters: ReportFilters, *, chunk_size: int = 2000) -> Iterator[tuple]:
    """Every decision on the selected inspections, oldest first, as tuples of ``LOG_FIELDS``;
    ``undone_at`` is when its inspector's next decision undid it, else None."""
    return (
        verifications(filters)
        .annotate(undone_at=Case(When(UNDONE, then=F("next_at")), default=None))
        .order_by("created_at", "id")
        .values_list(*LOG_FIELDS)
        .iterator(chunk_size=chunk_size)
    )


def row_count(filters: ReportFilters) -> int:
    """Rows a workbook would hold: inspections plus decisions (two count queries)."""
    return inspections(filters).count() + verifications(filters).count()


def recent_exports(user, *, limit: int = 5) -> list[Job]:
    """The person's latest background workbook exports, newest first."""
    return list(Job.objects.filter(kind=REPORT_EXPORT, requested_by=user)[:limit])


def export_job_of(user, job_id) -> Job | None:
    """A background workbook export, if this person asked for it (nobody else sees it)."""
    return Job.objects.filter(pk=job_id, kind=REPORT_EXPORT, requested_by=user).first()
