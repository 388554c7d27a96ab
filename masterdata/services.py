"""Writes to master data."""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from masterdata.models import DefectType, Line, Plant, Product, Station
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
