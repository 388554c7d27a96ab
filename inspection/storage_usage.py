"""Storage in use per plant, its growth, the storage's free space and the days left.

Sizes come from ``Inspection.image_bytes`` (kept since frames are stored with their
size; older frames count at the mean size of the known ones). Summing a year of frames
takes seconds, so the retention job measures each plant after its run
(``PlantStorage``) and pages read that; a plant never measured is measured on first
read. Free space is the local volume's (``shutil.disk_usage``); for S3, which has no
free space of its own, ``STORAGE_CAPACITY_BYTES`` minus what every plant stores.
"""

import datetime as dt
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Count, Q, Sum
from django.utils import timezone

from inspection.models import Inspection, PlantStorage, RetentionDay
from masterdata.models import Line, Plant

GROWTH_DAYS = 30


def storage_measure(plant: Plant, *, now: dt.datetime | None = None) -> PlantStorage:
    """Measure a plant's stored images and the bytes it added per day over 30 days."""
    now = now or timezone.now()
    lines = list(Line.objects.filter(plant=plant).values_list("pk", flat=True))
    frames = Inspection.objects.filter(line_id__in=lines)
    totals = frames.exclude(image="").aggregate(
        known=Sum("image_bytes"), files=Count("pk"), sized=Count("image_bytes")
    )
    known, files, sized = totals["known"] or 0, totals["files"], totals["sized"]
    unknown = files - sized
    mean = known / sized if sized else 0
    since = now.astimezone(plant.tzinfo).date() - dt.timedelta(days=GROWTH_DAYS)
    daily = (
        frames.filter(local_date__gt=since)
        .values("local_date")
        .annotate(added=Sum("image_bytes"), frames=Count("pk"), sized=Count("image_bytes"))
        .order_by("local_date")
    )
    per_day = [
        [row["local_date"].isoformat(), _estimated(row["added"], row["frames"], row["sized"])]
        for row in daily
    ]
    measured, _ = PlantStorage.objects.update_or_create(
        plant=plant,
        defaults={
            "measured_at": now,
            "image_bytes": known + round(unknown * mean),
            "image_files": files,
            "unknown_size_files": unknown,
            "daily": per_day,
        },
    )
    return measured


def _estimated(known: int | None, frames: int, sized: int) -> int:
    """A day's bytes: the known sizes, scaled up for frames stored without one."""
    if not sized:
        return 0
    return round((known or 0) * frames / sized)


@dataclass(frozen=True)
class StorageSpace:
    kind: str  # "local" or "s3" (any storage without a local path)
    free_bytes: int | None
    capacity_bytes: int | None

    @property
    def low(self) -> bool:
        return self.free_bytes is not None and (
            self.free_bytes < settings.LINESIGHT["STORAGE_MIN_FREE_BYTES"]
        )


def storage_space() -> StorageSpace:
    """Free space where frames are stored: the volume's, or the S3 capacity setting's."""
    try:
        location = Path(default_storage.path(""))
    except NotImplementedError:
        capacity = settings.LINESIGHT["STORAGE_CAPACITY_BYTES"] or None
        if capacity is None:
            return StorageSpace(kind="s3", free_bytes=None, capacity_bytes=None)
        used = PlantStorage.objects.aggregate(used=Sum("image_bytes"))["used"] or 0
        return StorageSpace(kind="s3", free_bytes=max(capacity - used, 0), capacity_bytes=capacity)
    while not location.exists() and location != location.parent:
        location = location.parent  # the media folder is made by the first frame
    usage = shutil.disk_usage(location)
    return StorageSpace(kind="local", free_bytes=usage.free, capacity_bytes=usage.total)


def _freed_per_day(plant: Plant | None, days: int, today: dt.date) -> float:
    since = today - dt.timedelta(days=days)
    scope = Q(day__gt=since) & (Q(plant=plant) if plant is not None else Q())
    freed = RetentionDay.objects.filter(scope).aggregate(freed=Sum("bytes_freed"))["freed"]
    return (freed or 0) / days


def _added_per_day(measured: PlantStorage, days: int, today: dt.date) -> float:
    since = (today - dt.timedelta(days=days)).isoformat()
    return sum(added for day, added in measured.daily if day > since) / days


@dataclass(frozen=True)
class PlantStorageStatus:
    plant: str
    measured_at: str
    image_bytes: int
    image_files: int
    unknown_size_files: int
    added_per_day_7d: float
    added_per_day_30d: float
    net_growth_per_day_7d: float
    net_growth_per_day_30d: float
    daily: list
    storage: dict

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def measured(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.measured_at)


def plant_storage_status(plant: Plant) -> PlantStorageStatus:
    """A plant's storage figures, and the storage's free space and days left at the rate of
    every plant that stores there (growth net of what retention frees)."""
    measured = PlantStorage.objects.filter(plant=plant).first() or storage_measure(plant)
    today = timezone.localdate(timezone=plant.tzinfo)
    added = {days: _added_per_day(measured, days, today) for days in (7, GROWTH_DAYS)}
    net = {days: added[days] - _freed_per_day(plant, days, today) for days in (7, GROWTH_DAYS)}
    return PlantStorageStatus(
        plant=plant.code,
        measured_at=measured.measured_at.isoformat(),
        image_bytes=measured.image_bytes,
        image_files=measured.image_files,
        unknown_size_files=measured.unknown_size_files,
        added_per_day_7d=round(added[7]),
        added_per_day_30d=round(added[GROWTH_DAYS]),
        net_growth_per_day_7d=round(net[7]),
        net_growth_per_day_30d=round(net[GROWTH_DAYS]),
        daily=measured.daily,
        storage=_space_figures(storage_space(), today),
    )


def _space_figures(space: StorageSpace, today: dt.date) -> dict:
    growth = sum(
        _added_per_day(measured, 7, today) for measured in PlantStorage.objects.all()
    ) - _freed_per_day(None, 7, today)
    days_left = None
    if space.free_bytes is not None and growth > 0:
        days_left = round(space.free_bytes / growth, 1)
    return {
        "kind": space.kind,
        "free_bytes": space.free_bytes,
        "capacity_bytes": space.capacity_bytes,
        "min_free_bytes": settings.LINESIGHT["STORAGE_MIN_FREE_BYTES"],
        "low": space.low,
        "net_growth_per_day_7d": round(growth),
        "days_left": days_left,
    }


def storage_warning() -> str:
    """The dashboard's warning when free space is below ``STORAGE_MIN_FREE_BYTES`` ("" if not)."""
    space = storage_space()
    if not space.low:
        return ""
    return (
        f"Frame storage is nearly full: {space.free_bytes / 1e9:.1f} GB free "
        f"(warning below {settings.LINESIGHT['STORAGE_MIN_FREE_BYTES'] / 1e9:.1f} GB). "
        "When it is full, frames are refused; ask an administrator to shorten retention "
        "or add space."
    )
