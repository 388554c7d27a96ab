"""Reads of the inspection app: frames and their rules, dashboards, the review queue."""

import datetime as dt
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Case, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.utils import timezone

from inspection.choices import ReviewStatus
from inspection.models import Inspection, Verification
from inspection.verdict import DecisionRules
from masterdata.choices import SEVERITY_RANK
from masterdata.models import DefectType, Line, Product, Shift, Station
from masterdata.selectors import plant_time
from models_registry.models import Deployment, ModelVersion
from models_registry.selectors import active_deployment_row, deployment_queryset


@dataclass
class Serving:
    """What judges a station's frames: the deployment (with its version) and its rules."""

    deployment: Deployment
    rules: DecisionRules

    @property
    def version(self) -> ModelVersion:
        return self.deployment.version

    @cached_property
    def defect_types(self) -> dict[int, DefectType]:
        """The version's defect types by id (prefetched with its label mappings)."""
        return {
            m.defect_type_id: m.defect_type for m in self.version.mappings.all() if m.defect_type_id
        }


# Everything that, when it changes, changes how a deployment judges a frame:
# the row itself, its version's label mappings, serving artifacts and
# declared preprocessing. Read with the deployment on every frame, they key
# the per-process cache, so nothing stale is ever served.
SERVING_KEY = (
    "id",
    "activated_at",
    "version__mapping_revision",
    "version__validated_at",
    "version__serving_runtime",
    "version__tflite_sha256",
    "version__serving_savedmodel_sha256",
    "version__resize_mode",
    "version__value_scale",
    "version__color_mode",
)


def serving_for(*, station: Station, product: Product | None) -> Serving | None:
    """The deployment judging a frame of ``product`` at ``station``, and its rules.

    One light query per frame (``active_deployment_row``, where a product's
    deployment wins over the station-wide one); the objects behind it are
    built once per process and rebuilt when the serving key changes.
    """
    key = active_deployment_row(
        station_id=station.pk, product_id=product.pk if product else None, fields=SERVING_KEY
    )
    return _serving(key) if key else None


@lru_cache(maxsize=256)
def _serving(key: tuple) -> Serving:
    """The serving of the deployment whose ``SERVING_KEY`` is ``key`` (its id first)."""
    deployment = deployment_queryset().get(pk=key[0])
    return Serving(deployment=deployment, rules=DecisionRules.from_deployment(deployment))


# Master data a frame needs that changes a few times a year: the line's
# products and the plant's shift calendar. Each worker keeps the objects, and
# every frame reads their rows back in one small indexed query and rebuilds
# the objects only when the rows differ: a product added, archived or
# renamed, or a shift moved, in any process (even by a queryset ``update()``
# that sends no signal), applies from the very next frame in every worker.
_line_facts: dict[int, tuple[tuple, "LineFacts"]] = {}


@dataclass(frozen=True)
class LineFacts:
    products: tuple[Product, ...]  # the line's products, for frames that name none
    shifts: tuple[Shift, ...]  # the plant's shift calendar


def line_facts(*, station: Station) -> LineFacts:
    """The line's products (at most 10, by SKU) and its plant's shifts, never stale."""
    with connection.cursor() as cursor:
        cursor.execute(_line_facts_sql(), (station.line_id, station.line.plant_id))
        stamp = tuple(sorted(cursor.fetchall()))
    cached = _line_facts.get(station.line_id)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    facts = LineFacts(
        products=tuple(
            Product.objects.filter(lines=station.line_id, archived=False).order_by("sku")[:10]
        ),
        shifts=tuple(Shift.objects.filter(plant_id=station.line.plant_id)),
    )
    _line_facts[station.line_id] = (stamp, facts)
    return facts


@cache
def _line_facts_sql() -> str:
    """The rows behind ``LineFacts`` (products of a line, shifts of a plant), as one query.

    Written once per process as SQL: compiling the ORM's union on every frame
    would cost more than running it. Every name comes from the models'
    metadata, quoted; both values are parameters.
    """
    quote = connection.ops.quote_name
    through = Product.lines.through._meta
    product_id = quote(through.get_field("product").column)
    line_id = quote(through.get_field("line").column)
    plant_id, start, end = (
        quote(Shift._meta.get_field(name).column) for name in ("plant", "start", "end")
    )
    product_pk, shift_pk = (quote(model._meta.pk.column) for model in (Product, Shift))
    return (
        f"SELECT 'p', p.{product_pk}, p.sku, p.name, NULL, NULL"  # noqa: S608
        f" FROM {quote(Product._meta.db_table)} p"
        f" INNER JOIN {quote(through.db_table)} pl ON pl.{product_id} = p.{product_pk}"
        f" WHERE pl.{line_id} = %s AND NOT p.archived"
        f" UNION ALL SELECT 's', s.{shift_pk}, s.name, NULL, s.{start}, s.{end}"
        f" FROM {quote(Shift._meta.db_table)} s WHERE s.{plant_id} = %s"
    )


def forget_line_facts() -> None:
    """Drop this process's line facts (tests start from an empty cache)."""
    _line_facts.clear()


DASHBOARD_PERMISSION = "inspection.view_dashboard"
REVIEW_PERMISSION = "inspection.review_inspection"


def user_can_view_dashboard(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and user.is_active and user.has_perm(DASHBOARD_PERMISSION))


def user_can_review(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and user.is_active and user.has_perm(REVIEW_PERMISSION))


def line_by_code(code: str) -> Line | None:
    return Line.objects.select_related("plant").filter(code=code).first()


def dashboard_line_codes() -> list[str]:
    """Lines shown on the plant overview (archived ones are history)."""
    return list(Line.objects.filter(archived=False).values_list("code", flat=True))


def inspection_queryset() -> QuerySet[Inspection]:
    """Inspections with everything an event payload or a page reads, in one query."""
    return Inspection.objects.select_related(
        "station", "line", "product", "defect_type", "model_version__model", "claimed_by"
    )


def inspection_for_key(*, station: Station, key: str) -> Inspection | None:
    """The frame ``station`` stored under idempotency ``key``, if any (one indexed query)."""
    return inspection_queryset().filter(station=station, idempotency_key=key).first()


# --- Review queue -------------------------------------------------------------

_SEVERITY_ORDER = Case(
    *[
        When(defect_type__severity=severity, then=Value(rank))
        for severity, rank in SEVERITY_RANK.items()
    ],
    default=Value(len(SEVERITY_RANK)),
    output_field=IntegerField(),
)


def review_pending(*, line: str = "", station: str = "") -> QuerySet[Inspection]:
    """Frames waiting for an inspector, most severe first, then oldest first."""
    queryset = inspection_queryset().filter(review_status=ReviewStatus.PENDING)
    if line:
        queryset = queryset.filter(line__code=line)
    if station:
        queryset = queryset.filter(station__code=station)
    return queryset.annotate(severity_rank=_SEVERITY_ORDER).order_by(
        "severity_rank", "captured_at", "id"
    )


def review_queue(
    *, inspector: AbstractBaseUser, line: str = "", station: str = "", limit: int = 50
) -> list[Inspection]:
    """The next frames for ``inspector``: pending, not claimed by someone else right now."""
    now = timezone.now()
    free = Q(claimed_by__isnull=True) | Q(claimed_until__lte=now) | Q(claimed_by_id=inspector.pk)
    return list(review_pending(line=line, station=station).filter(free)[:limit])


def review_defect_types() -> list[DefectType]:
    """The defect types an inspector can pick, in the order their keys 1-9 follow."""
    return list(DefectType.objects.filter(archived=False).order_by("code"))


def review_filters() -> list[Line]:
    return list(Line.objects.filter(archived=False).prefetch_related("stations"))


def inspection_detail(pk: int) -> Inspection | None:
    return inspection_queryset().select_related("deployment").filter(pk=pk).first()


def latest_verification(*, inspection: Inspection) -> Verification | None:
    """The decision in force on a frame: its newest verification (the higher id on a tie)."""
    return (
        inspection.verifications.select_related("inspector").order_by("-created_at", "-id").first()
    )


def verification_history(inspection: Inspection) -> list[Verification]:
    return list(
        inspection.verifications.select_related("inspector", "defect_type").order_by(
            "created_at", "id"
        )
    )


# --- Line view and plant overview --------------------------------------------


def recent_frames(*, line: Line, limit: int = 24) -> list[Inspection]:
    return list(inspection_queryset().filter(line=line).order_by("-received_at", "-id")[:limit])


@dataclass
class StationStatus:
    station: Station
    last: Inspection | None = None
    frames_per_minute: float = 0.0
    defect_rate_hour: float | None = None
    defect_rate_shift: float | None = None
    pending: int = 0
    versions: list[str] = field(default_factory=list)


@dataclass
class LineStatus:
    line: Line
    shift_name: str | None
    stations: list[StationStatus]
    # First-pass yield now and the shift before (inspection.trends.line_yield), where shown.
    shift_yield: tuple | None = None

    @property
    def pending(self) -> int:
        return sum(status.pending for status in self.stations)


def _rates(queryset: QuerySet[Inspection]) -> dict[int, tuple[int, int]]:
    rows = queryset.values("station_id").annotate(
        frames=Count("id"), defects=Count("id", filter=Q(final_is_defect=True))
    )
    return {row["station_id"]: (row["frames"], row["defects"]) for row in rows}


def _share(counts: tuple[int, int] | None) -> float | None:
    if not counts or not counts[0]:
        return None
    return counts[1] / counts[0]


def line_status(*, lines: list[Line], now: dt.datetime | None = None) -> list[LineStatus]:
    """Every station of ``lines`` with its last verdict, rates, pending reviews and model.

    Frames per minute are averaged over the last five minutes; the shift is
    the one running now in each plant's calendar. A handful of indexed
    queries whatever the number of stations.
    """
    now = now or timezone.now()
    line_ids = [line.pk for line in lines]
    stations, last = _stations_with_last_frame(line_ids)
    in_window = Inspection.objects.filter(line_id__in=line_ids)
    hour = _rates(in_window.filter(received_at__gte=now - dt.timedelta(hours=1)))
    five = _rates(in_window.filter(received_at__gte=now - dt.timedelta(minutes=5)))
    pending = dict(
        in_window.filter(review_status=ReviewStatus.PENDING)
        .values("station_id")
        .annotate(n=Count("id"))
        .values_list("station_id", "n")
    )
    versions = _versions_by_station(line_ids)
    result = []
    for line in lines:
        shift_now = plant_time(line.plant, now)
        shift = {}
        if shift_now.shift is not None:
            shift = _rates(
                in_window.filter(line=line, shift=shift_now.shift, shift_date=shift_now.shift_date)
            )
        statuses = [
            StationStatus(
                station=station,
                last=last.get(station.last_id),
                frames_per_minute=five.get(station.pk, (0, 0))[0] / 5,
                defect_rate_hour=_share(hour.get(station.pk)),
                defect_rate_shift=_share(shift.get(station.pk)),
                pending=pending.get(station.pk, 0),
                versions=versions.get(station.pk, []),
            )
            for station in stations
            if station.line_id == line.pk
        ]
        shift_name = shift_now.shift.name if shift_now.shift else None
        result.append(LineStatus(line=line, shift_name=shift_name, stations=statuses))
    return result


def _stations_with_last_frame(line_ids: list[int]) -> tuple[list[Station], dict[int, Inspection]]:
    """The lines' stations (``last_id`` annotated) and their last inspections by id."""
    last_id = Subquery(
        Inspection.objects.filter(station=OuterRef("pk"))
        .order_by("-captured_at", "-id")
        .values("id")[:1]
    )
    stations = list(
        Station.objects.filter(line_id__in=line_ids).annotate(last_id=last_id).order_by("code")
    )
    last = inspection_queryset().in_bulk([s.last_id for s in stations if s.last_id])
    return stations, last


def _versions_by_station(line_ids: list[int]) -> dict[int, list[str]]:
    """What each station serves now, sorted: 'model vN', with '(SKU)' for a product's."""
    versions: dict[int, list[str]] = {}
    for deployment in Deployment.objects.filter(
        station__line_id__in=line_ids, is_active=True
    ).select_related("version__model", "product"):
        text = str(deployment.version)
        if deployment.product_id:
            text += f" ({deployment.product.sku})"
        versions.setdefault(deployment.station_id, []).append(text)
    return {station_id: sorted(texts) for station_id, texts in versions.items()}


def overview_lines() -> list[Line]:
    return list(Line.objects.filter(archived=False).select_related("plant").order_by("code"))
