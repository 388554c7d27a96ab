"""Small pictures for the dashboards: a station's defect rate over the last hour, a line's
first-pass yield this shift against the shift before.

The defect rate and the yield use the frame's final word (the inspector's
decision when there is one, the model's otherwise), like the tiles' figures.
"""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from inspection.models import Inspection
from masterdata.models import Line
from masterdata.selectors import plant_time

SPARK_BUCKETS = 12  # of SPARK_MINUTES each: the last hour
SPARK_MINUTES = 5


def defect_sparklines(
    station_ids: list[int], now: dt.datetime | None = None
) -> dict[int, list[float | None]]:
    """Per station, the share of defective frames in each 5-minute step of the last hour,
    oldest first; None for a step without frames. One grouped query."""
    now = now or timezone.now()
    start = now - dt.timedelta(minutes=SPARK_BUCKETS * SPARK_MINUTES)
    rows = (
        Inspection.objects.filter(station_id__in=station_ids, received_at__gte=start)
        .annotate(minute=TruncMinute("received_at"))
        .values("station_id", "minute")
        .annotate(frames=Count("id"), defects=Count("id", filter=Q(final_is_defect=True)))
    )
    counts = {pk: [[0, 0] for _ in range(SPARK_BUCKETS)] for pk in station_ids}
    for row in rows:
        step = int((row["minute"] - start).total_seconds() // (SPARK_MINUTES * 60))
        bucket = counts[row["station_id"]][min(max(step, 0), SPARK_BUCKETS - 1)]
        bucket[0] += row["frames"]
        bucket[1] += row["defects"]
    return {
        pk: [defects / frames if frames else None for frames, defects in steps]
        for pk, steps in counts.items()
    }


@dataclass(frozen=True)
class ShiftYield:
    shift: str
    frames: int
    first_pass_yield: float | None  # share of frames without a defect; None without frames


def _shift_yield(line: Line, shift, shift_date: dt.date) -> ShiftYield:
    counts = Inspection.objects.filter(line=line, shift=shift, shift_date=shift_date).aggregate(
        frames=Count("id"), good=Count("id", filter=Q(final_is_defect=False))
    )
    frames = counts["frames"]
    share = counts["good"] / frames if frames else None
    return ShiftYield(shift=shift.name, frames=frames, first_pass_yield=share)


def line_yield(line: Line, now: dt.datetime | None = None) -> tuple[ShiftYield, ShiftYield] | None:
    """First-pass yield of the shift running now and of the shift before it, or None when
    the plant has no shift running now or none before it."""
    now = now or timezone.now()
    plant = line.plant
    current = plant_time(plant, now)
    if current.shift is None:
        return None
    began = dt.datetime.combine(current.shift_date, current.shift.start, tzinfo=plant.tzinfo)
    before = plant_time(plant, began - dt.timedelta(minutes=1))
    if before.shift is None:
        return None
    return (
        _shift_yield(line, current.shift, current.shift_date),
        _shift_yield(line, before.shift, before.shift_date),
    )


def yield_json(pair: tuple[ShiftYield, ShiftYield] | None) -> dict | None:
    if pair is None:
        return None
    now, before = pair
    return {
        "shift": now.shift,
        "frames": now.frames,
        "first_pass_yield": now.first_pass_yield,
        "before": {
            "shift": before.shift,
            "frames": before.frames,
            "first_pass_yield": before.first_pass_yield,
        },
    }
