"""The review queue's counter of an inspector's shift: frames decided since it began."""

import datetime as dt

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from inspection.models import Verification
from masterdata.models import Plant
from masterdata.selectors import plant_time

# Without a shift calendar (or outside every shift) the counter covers this much.
FALLBACK_WINDOW = dt.timedelta(hours=8)


def shift_began(plant: Plant | None, now: dt.datetime) -> tuple[str, dt.datetime]:
    """The name of the shift running at ``plant`` now and when it began (aware)."""
    if plant is not None:
        local = plant_time(plant, now)
        if local.shift is not None:
            began = dt.datetime.combine(local.shift_date, local.shift.start, tzinfo=plant.tzinfo)
            return local.shift.name, began
    return "last 8 hours", now - FALLBACK_WINDOW


def inspector_shift(*, inspector: AbstractBaseUser, plant: Plant | None) -> dict:
    """What the counter shows: the shift, when it began, frames the inspector decided since.

    A frame decided again (after an undo or a change) counts once.
    """
    name, began = shift_began(plant, timezone.now())
    decided = (
        Verification.objects.filter(inspector=inspector, created_at__gte=began)
        .values("inspection")
        .distinct()
        .count()
    )
    return {"name": name, "began_at": began.isoformat(), "decided": decided}
