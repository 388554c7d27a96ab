"""Reads: where one station stands now, for pipelines (GET /api/v1/stations/{code}/state/).

Two queries whatever the station's history: the station with its last frame
and its counts as correlated subqueries (each served by an index: station and
capture time, receive time, the partial index of pending reviews), then what
it serves. The defect rate is the plant overview's: frames received in the
last hour that are finally judged defective (the inspector's latest word, or
the model's call while undecided), over all frames received in that hour.
"""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from inspection.choices import ReviewStatus
from inspection.models import Inspection
from masterdata.models import Station
from models_registry.models import Deployment

WINDOW = dt.timedelta(hours=1)
LAST_FIELDS = ("id", "verdict", "label", "defect_type__code", "captured_at", "received_at")


@dataclass
class StationState:
    station: Station
    deployments: list[Deployment]
    last: dict | None
    frames: int
    defects: int
    pending: int
    since: dt.datetime
    at: dt.datetime

    @property
    def defect_rate(self) -> float | None:
        return self.defects / self.frames if self.frames else None


def _count(frames: QuerySet[Inspection], **filters) -> Coalesce:
    counted = frames.filter(**filters).values("station").annotate(n=Count("id")).values("n")
    return Coalesce(Subquery(counted[:1]), Value(0), output_field=IntegerField())


def station_state(*, code: str, now: dt.datetime | None = None) -> StationState | None:
    """The station's active versions, last frame, last hour's figures and pending reviews."""
    now = now or timezone.now()
    since = now - WINDOW
    frames = Inspection.objects.filter(station=OuterRef("pk")).order_by()
    last = frames.order_by("-captured_at", "-id")
    station = (
        Station.objects.select_related("line__plant")
        .filter(code=code)
        .annotate(
            **{f"last_{name}": Subquery(last.values(name)[:1]) for name in LAST_FIELDS},
            frames_hour=_count(frames, received_at__gte=since),
            defects_hour=_count(frames, received_at__gte=since, final_is_defect=True),
            pending=_count(frames, review_status=ReviewStatus.PENDING),
        )
        .first()
    )
    if station is None:
        return None
    deployments = list(
        Deployment.objects.filter(station=station, is_active=True)
        .select_related("version__model", "product")
        .order_by("product__sku")
    )
    last_row = None
    if station.last_id is not None:
        last_row = {name: getattr(station, f"last_{name}") for name in LAST_FIELDS}
        last_row["defect_type"] = last_row.pop("defect_type__code")
    return StationState(
        station=station,
        deployments=deployments,
        last=last_row,
        frames=station.frames_hour,
        defects=station.defects_hour,
        pending=station.pending,
        since=since,
        at=now,
    )
