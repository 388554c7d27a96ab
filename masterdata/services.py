"""Writes to master data."""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model, ProtectedError, QuerySet, RestrictedError
from django.utils import timezone

from masterdata.models import DefectType, Line, Plant, Product, Station
from masterdata.selectors import references_blocking_delete
from masterdata.tokens import generate_station_token, hash_station_token


@transaction.atomic
def station_token_rotate(*, station: Station) -> str:
    """Give the station a new device token and return it; the old one stops working."""
    token = generate_station_token()
    station.token_hash = hash_station_token(token)
    station.token_prefix = token[:12]
    station.token_rotated_at = timezone.now()
    station.save(update_fields=["token_hash", "token_prefix", "token_rotated_at"])
    return token


@transaction.atomic
def station_token_revoke(*, station: Station) -> None:
    """Remove the station's device token; its device is refused until a new one is issued."""
    station.token_hash = ""
    station.token_prefix = ""
    station.token_rotated_at = timezone.now()
    station.save(update_fields=["token_hash", "token_prefix", "token_rotated_at"])


@transaction.atomic
def station_tokens_rotate(*, stations: Iterable[Station]) -> list[tuple[Station, str]]:
    """Give each station a new device token, all or none; returns each station with its token."""
    return [(station, station_token_rotate(station=station)) for station in stations]


@transaction.atomic
def station_tokens_revoke(*, stations: Iterable[Station]) -> None:
    """Remove the device token of each station, all or none."""
    for station in stations:
        station_token_revoke(station=station)


ARCHIVABLE_MODELS = (Plant, Line, Product, DefectType)


@transaction.atomic
def masterdata_set_archived(*, objects: QuerySet, archived: bool) -> int:
    """Archive rows (hidden from pickers, kept for history) or restore them; returns the count.

    Archiving is the way to retire master data that inspections or deployments
    still point at, since deleting it is refused.
    """
    if objects.model not in ARCHIVABLE_MODELS:
        raise ValueError(f"{objects.model._meta.verbose_name_plural} cannot be archived.")
    pks = list(objects.values_list("pk", flat=True))
    return (
        objects.model.objects.filter(pk__in=pks)
        .exclude(archived=archived)
        .update(archived=archived)
    )


@transaction.atomic
def stations_set_active(*, stations: QuerySet[Station], active: bool) -> int:
    """Activate or deactivate stations (the API refuses inactive ones); returns how many changed."""
    pks = list(stations.values_list("pk", flat=True))
    return Station.objects.filter(pk__in=pks).exclude(active=active).update(active=active)


# --- Create, change and delete (the API; admin's forms apply the same checks) --


class DeleteRefused(ValidationError):
    """Rows still refer to what was to be deleted; archive (or deactivate) it instead."""


RETIRE_INSTEAD = {
    Station: "deactivate it instead (active: false); the API then refuses its frames",
}


def _retire_hint(obj: Model) -> str:
    if type(obj) in RETIRE_INSTEAD:
        return RETIRE_INSTEAD[type(obj)]
    if type(obj) in ARCHIVABLE_MODELS:
        return "archive it instead (archived: true): hidden from pickers, kept for history"
    return "remove what refers to it first"


@transaction.atomic
def masterdata_delete(*, obj: Model) -> None:
    """Delete a row nothing refers to; otherwise refuse, saying what holds it.

    The same rule as admin's delete page (references_blocking_delete counts the
    protecting rows); a protection reached through a cascade is refused alike.
    """
    name = f"{obj._meta.verbose_name} {obj}"
    blocking = references_blocking_delete([obj])
    if not blocking:
        try:
            obj.delete()
            return
        except (ProtectedError, RestrictedError) as error:
            blocking = [f"{len(error.args[1]):,} other row(s)"]
    raise DeleteRefused(
        f"{name[0].upper()}{name[1:]} cannot be deleted: {', '.join(blocking)} refer to it; "
        f"{_retire_hint(obj)}."
    )


def _archived_picks(
    obj: Model, fields: dict[str, Any], lines: Iterable[Line] | None
) -> dict[str, str]:
    """Archived rows newly chosen for ``obj``, per field: admin's pickers do not offer them."""
    picked = {}
    for name, value in fields.items():
        field = obj._meta.get_field(name)
        newly_chosen = field.is_relation and getattr(obj, field.attname) != value.pk
        if newly_chosen and getattr(value, "archived", False):
            picked[name] = [value]
    if lines is not None:
        current = set(obj.lines.values_list("pk", flat=True)) if obj.pk else set()
        archived = [line for line in lines if line.archived and line.pk not in current]
        if archived:
            picked["lines"] = archived
    return {
        name: f"{', '.join(str(getattr(row, 'code', row)) for row in rows)} is archived; "
        "restore it before choosing it."
        for name, rows in picked.items()
    }


def masterdata_save(
    *, obj: Model, fields: dict[str, Any], lines: Iterable[Line] | None = None
) -> Model:
    """Create ``obj`` (unsaved) or change it with ``fields``, checked as admin's forms check.

    Field rules and unique codes come from the model (``full_clean``); an
    archived plant, line or product is not picked for new work. ``lines`` sets
    a product's lines. Nothing is written when a check fails.
    """
    lines = list(lines) if lines is not None else None
    refused = _archived_picks(obj, fields, lines)
    if refused:
        raise ValidationError(refused)
    for name, value in fields.items():
        setattr(obj, name, value)
    obj.full_clean()
    try:
        with transaction.atomic():
            obj.save()
            if lines is not None:
                obj.lines.set(lines)
    except IntegrityError:
        # Two requests raced past full_clean with the same code.
        raise ValidationError(f"Another {obj._meta.verbose_name} has this code.") from None
    return obj


@transaction.atomic
def station_create(*, fields: dict[str, Any]) -> tuple[Station, str]:
    """A new station with its first device token, returned once (only its hash is kept)."""
    station = masterdata_save(obj=Station(), fields=fields)
    return station, station_token_rotate(station=station)
