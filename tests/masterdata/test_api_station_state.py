"""GET /api/v1/stations/{code}/state/: a station now, in two queries whatever its history."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from inspection.station_state import station_state
from tests import factories

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


@pytest.fixture
def busy_station():
    line = factories.line(code="L1", plant_obj=factories.plant(code="LYON"))
    station, token = factories.station_with_token(code="S1", line_obj=line)
    version = factories.version_row(model_name="bottle")
    deployment = factories.deployment(station_obj=station, version=version)
    now = timezone.now()
    old = now - dt.timedelta(hours=3)
    # Two hours ago: counted nowhere in the last hour, nor last.
    for _ in range(2):
        row = factories.inspection_row(deployment_obj=deployment, verdict="fail", captured_at=old)
        type(row).objects.filter(pk=row.pk).update(received_at=old)
    factories.inspection_row(deployment_obj=deployment, captured_at=now - dt.timedelta(minutes=3))
    factories.inspection_row(deployment_obj=deployment, captured_at=now - dt.timedelta(minutes=2))
    factories.inspection_row(deployment_obj=deployment, captured_at=now - dt.timedelta(minutes=2))
    last = factories.inspection_row(
        deployment_obj=deployment, verdict="fail", captured_at=now - dt.timedelta(minutes=1)
    )
    # Another station's frames change nothing here.
    other = factories.station(code="S2", line_obj=line)
    factories.inspection_row(
        deployment_obj=factories.deployment(station_obj=other, version=version), verdict="fail"
    )
    return {"station": station, "token": token, "last": last, "version": version}


def test_state_shows_version_last_verdict_last_hour_and_pending_reviews(busy_station):
    api = client_for(factories.viewer())

    body = api.get("/api/v1/stations/S1/state/").json()

    assert (body["station"], body["line"], body["plant"], body["active"]) == (
        "S1",
        "L1",
        "LYON",
        True,
    )
    version = busy_station["version"]
    assert body["active_version"]["model"] == "bottle"
    assert body["active_version"]["version"] == version.number
    assert body["active_version"]["product"] is None
    assert len(body["serving"]) == 1
    last = body["last_inspection"]
    assert (last["id"], last["verdict"], last["defect_type"]) == (
        busy_station["last"].pk,
        "fail",
        "missing_cap",
    )
    assert body["last_hour"]["frames"] == 4 and body["last_hour"]["defects"] == 1
    assert body["last_hour"]["defect_rate"] == pytest.approx(0.25)
    assert body["pending_reviews"] == 3  # the last hour's fail and the two older ones


def test_state_is_read_in_two_queries_however_many_frames(busy_station):
    with CaptureQueriesContext(connection) as queries:
        state = station_state(code="S1")
    assert len(queries.captured_queries) == 2
    assert state.frames == 4


def test_a_station_without_frames_or_deployment_has_an_empty_state():
    factories.station(code="NEW")

    body = client_for(factories.engineer()).get("/api/v1/stations/NEW/state/").json()

    assert body["active_version"] is None and body["serving"] == []
    assert body["last_inspection"] is None
    assert body["last_hour"]["frames"] == 0 and body["last_hour"]["defect_rate"] is None
    assert body["pending_reviews"] == 0


@pytest.mark.parametrize("role", ["viewer", "inspector", "engineer"])
def test_every_role_reads_a_stations_state(busy_station, role):
    response = client_for(getattr(factories, role)()).get("/api/v1/stations/S1/state/")
    assert response.status_code == 200


def test_a_device_reads_its_own_stations_state_only(busy_station):
    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Token {busy_station['token']}")

    assert device.get("/api/v1/stations/S1/state/").status_code == 200
    assert device.get("/api/v1/stations/S2/state/").status_code == 403
    assert APIClient().get("/api/v1/stations/S1/state/").status_code == 401


def test_unknown_station_is_a_404_naming_it():
    response = client_for(factories.viewer()).get("/api/v1/stations/NOPE/state/")
    assert response.status_code == 404
    assert "NOPE" in response.json()["detail"]
