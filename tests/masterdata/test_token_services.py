"""Rotating or revoking the tokens of several stations at once: all of them or none."""

import pytest
from django.db import DatabaseError

from masterdata.models import Station
from masterdata.services import station_tokens_revoke, station_tokens_rotate
from masterdata.tokens import hash_station_token
from tests import factories

pytestmark = pytest.mark.django_db


def token_works(station: Station, token: str) -> bool:
    return Station.objects.get(pk=station.pk).token_hash == hash_station_token(token)


def test_rotating_several_stations_gives_each_its_own_new_token():
    first, first_old = factories.station_with_token(code="S1")
    second = factories.station(code="S2")

    issued = station_tokens_rotate(stations=[first, second])

    assert [station for station, _ in issued] == [first, second]
    assert len({token for _, token in issued}) == 2
    assert all(token_works(station, token) for station, token in issued)
    assert not token_works(first, first_old)


def test_a_station_deleted_meanwhile_leaves_every_token_as_it_was():
    kept, kept_token = factories.station_with_token(code="S1")
    gone, _ = factories.station_with_token(code="S2")
    Station.objects.filter(pk=gone.pk).delete()  # by someone else, after the selection

    for operation in (station_tokens_rotate, station_tokens_revoke):
        with pytest.raises(DatabaseError):
            operation(stations=[kept, gone])

        assert token_works(kept, kept_token)
