"""The station token lookup keeps nothing but its compiled SQL: every request reads the
station, so a rotated, revoked or deactivated token, or a station moved to another line,
is seen by the very next request in every worker process."""

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext

from masterdata.authentication import station_for_token_hash
from masterdata.models import Station
from masterdata.services import station_token_revoke, station_token_rotate, stations_set_active
from masterdata.tokens import hash_station_token
from tests import factories
from tests.conftest import committed_db
from tests.images import GREEN, frame_bytes
from tests.registry import ready_version
from tests.servers import asgi_servers


@pytest.mark.django_db
def test_the_lookup_answers_what_the_orm_answers_in_one_query():
    plant = factories.plant(code="PL1", time_zone="America/Chicago")
    station, token = factories.station_with_token(
        code="ST1", line_obj=factories.line(code="L1", plant_obj=plant)
    )
    expected = Station.objects.select_related("line__plant").get(pk=station.pk)

    with CaptureQueriesContext(connection) as queries:
        found = station_for_token_hash(hash_station_token(token))
        plant_seen = (found.line.code, found.line.plant.code, str(found.line.plant.tzinfo))

    assert len(queries) == 1
    assert plant_seen == ("L1", "PL1", "America/Chicago")
    for field in Station._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found.token_rotated_at.tzinfo is not None
    assert found.active is True
    assert station_for_token_hash(hash_station_token("lss_unknown")) is None


def post(server, token: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/inspections/",
        headers={"Authorization": f"Token {token}"},
        data={"station": "ST1"},
        files={"image": ("f.jpg", frame_bytes(GREEN), "image/jpeg")},
        timeout=30,
    )


@pytest.mark.slow
@committed_db
def test_token_and_station_changes_reach_the_next_request_on_every_worker(tmp_path, _media_root):
    plant = factories.plant(code="PL1")
    station, token = factories.station_with_token(
        code="ST1", line_obj=factories.line(code="L1", plant_obj=plant)
    )
    factories.deployment(station_obj=station, version=ready_version(), confidence_threshold=0.5)
    other_line = factories.line(code="L2", plant_obj=plant)
    with asgi_servers(2, data_dir=tmp_path) as (worker_a, worker_b):
        for worker in (worker_a, worker_b):
            assert post(worker, token).status_code == 201

        new_token = station_token_rotate(station=station)
        for worker in (worker_a, worker_b):
            old = post(worker, token)
            assert old.status_code == 401
            assert "Unknown or revoked station token" in old.text
        assert post(worker_b, new_token).status_code == 201

        Station.objects.filter(pk=station.pk).update(line=other_line)
        assert post(worker_a, new_token).json()["line"] == "L2"

        stations_set_active(stations=Station.objects.filter(pk=station.pk), active=False)
        inactive = post(worker_b, new_token)
        assert inactive.status_code == 403
        assert "Station ST1 is inactive" in inactive.text

        station_token_revoke(station=station)
        assert post(worker_a, new_token).status_code == 401
