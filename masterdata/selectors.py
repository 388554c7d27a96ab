"""Reads from master data."""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db.models import PROTECT, Model, Q
from django.db.models.deletion import get_candidate_relations_to_delete

from masterdata.models import Plant, Shift, Station


@dataclass(frozen=True)
class PlantTime:
    """Where a moment falls in a plant's calendar."""

    local_date: dt.date
    shift: Shift | None
    shift_date: dt.date | None


def shift_at(shifts: Sequence[Shift], local: dt.datetime) -> tuple[Shift | None, dt.date | None]:
    """The shift running at local wall-clock time ``local``, and the date it started.

    Wall-clock comparison makes shifts follow daylight-saving changes: the
    22:00-06:00 shift simply lasts an hour more or less that night.
    """
    clock = local.time().replace(tzinfo=None)
    for shift in shifts:
        if not shift.crosses_midnight:
            if shift.start <= clock < shift.end:
                return shift, local.date()
        elif clock >= shift.start:
            return shift, local.date()
        elif clock < shift.end:
            return shift, local.date() - dt.timedelta(days=1)
    return None, None


def plant_time(plant: Plant, when: dt.datetime, shifts: Sequence[Shift] | None = None) -> PlantTime:
    """Local date, shift and shift date of an aware datetime at ``plant``."""
    local = when.astimezone(plant.tzinfo)
    if shifts is None:
        shifts = list(plant.shifts.all())
    shift, shift_date = shift_at(shifts, local)
    return PlantTime(local_date=local.date(), shift=shift, shift_date=shift_date)


def station_scope(station: Station) -> tuple[str, str, str]:
    """The (plant, line, station) codes that place a station's events (topics, order keys)."""
    return (station.line.plant.code, station.line.code, station.code)


def references_blocking_delete(objects: Iterable[Model]) -> list[str]:
    """Rows that protect ``objects`` from deletion, counted per kind: ``["3 inspections"]``.

    Counts rather than lists them, so refusing to delete a station with a
    million inspections stays quick. Empty when nothing points at them directly.
    """
    objects = list(objects)
    if not objects:
        return []
    pks = [obj.pk for obj in objects]
    conditions: dict[type[Model], Q] = defaultdict(Q)
    for relation in get_candidate_relations_to_delete(type(objects[0])._meta):
        if relation.on_delete is PROTECT:
            conditions[relation.related_model] |= Q(**{f"{relation.field.name}__in": pks})
    found = []
    for related_model, condition in sorted(conditions.items(), key=lambda c: c[0]._meta.label):
        count = related_model._base_manager.filter(condition).count()
        if count:
            opts = related_model._meta
            found.append(
                f"{count:,} {opts.verbose_name if count == 1 else opts.verbose_name_plural}"
            )
    return found
