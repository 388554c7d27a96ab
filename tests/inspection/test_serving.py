"""The production server: several worker processes sharing the database and Redis."""

import hashlib
import uuid

import pytest
import requests

from config.channel_layers import BACKENDS, redis_channel_layer
from tests import factories
from tests.conftest import committed_db
from tests.images import GREEN, frame_bytes
from tests.registry import ready_version
from tests.servers import asgi_servers

pytestmark = [committed_db, pytest.mark.slow]


def post_green(server, token: str) -> dict:
    response = requests.post(
        f"{server.url}/api/v1/inspections/",
        headers={"Authorization": f"Token {token}"},
        data={"station": "ST1"},
        files={"image": ("frame.jpg", frame_bytes(GREEN), "image/jpeg")},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(predicate, timeout: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(params=sorted(BACKENDS))
def redis_layer(request, settings, redis_url):
    """This test process and the servers share one Redis channel layer, of either kind."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(redis_url, kind=request.param, prefix=prefix)
    }
    return {
        "redis_url": redis_url,
        "env": {"LINESIGHT_CHANNEL_PREFIX": prefix, "LINESIGHT_CHANNEL_LAYER": request.param},
    }


def test_activation_reaches_every_worker_on_the_next_frame(tmp_path, redis_layer):
    line = factories.line(code="L1", plant_obj=factories.plant())
    station, token = factories.station_with_token(code="ST1", line_obj=line)
    first = ready_version(model_name="bottle")
    factories.deployment(station_obj=station, version=first)

    with asgi_servers(
        2,
        data_dir=tmp_path,
        redis_url=redis_layer["redis_url"],
        extra_env=redis_layer["env"],
    ) as servers:
        # Each worker warmed the deployed model before it said it was ready.
        for server in servers:
            assert f"Loaded bottle v{first.number}" in server.log()
            body = post_green(server, token)
            assert (body["model_version"]["version"], body["label"]) == (
                first.number,
                "missing_cap",
            )

        # Version 2 reads the same frames with its labels in another order: green is 'ok'.
        second = ready_version(
            model_name="bottle",
            labels=("missing_cap", "ok", "crack"),
            mapping={"missing_cap": "missing_cap", "ok": None, "crack": "crack"},
        )
        factories.deployment(station_obj=station, version=second)

        # Every worker hears of the change and loads the new version before any frame asks.
        for server in servers:
            assert wait_for(lambda s=server: f"Loaded bottle v{second.number}" in s.log()), (
                server.log()
            )
        for server in servers:
            body = post_green(server, token)
            assert (body["model_version"]["version"], body["verdict"]) == (second.number, "pass")
            assert f"Released model version {first.pk}" in server.log()


@pytest.fixture
def frames_dir(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a_red.jpg").write_bytes(frame_bytes((255, 0, 0), size=(640, 480)))
    (folder / "b_green.jpg").write_bytes(frame_bytes(GREEN, size=(640, 480)))
    return folder


def run_simulator(server, token, frames_dir, *extra) -> str:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command(
        "simulate_station",
        "--url",
        server.url,
        "--station",
        "ST1",
        "--token",
        token,
        "--images",
        str(frames_dir),
        "--rate",
        "50",
        "--count",
        "4",
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_simulated_station_fills_the_database_over_http(tmp_path, frames_dir):
    from inspection.models import Inspection

    line = factories.line(code="L1", plant_obj=factories.plant())
    station, token = factories.station_with_token(code="ST1", line_obj=line)
    factories.deployment(station_obj=station, version=ready_version(model_name="bottle"))
    with asgi_servers(1, data_dir=tmp_path) as (server,):
        summary = run_simulator(server, token, frames_dir)
    assert "ST1: 4 frames (2 fail, 2 pass), 0 errors" in summary
    assert (
        sorted(Inspection.objects.values_list("label", flat=True))
        == ["missing_cap"] * 2 + ["ok"] * 2
    )
    assert set(Inspection.objects.values_list("source", flat=True)) == {"server"}


def test_edge_station_runs_the_downloaded_model_and_follows_a_new_version(tmp_path, frames_dir):
    from inspection.models import Inspection

    line = factories.line(code="L1", plant_obj=factories.plant())
    station, token = factories.station_with_token(code="ST1", line_obj=line)
    factories.deployment(station_obj=station, version=ready_version(model_name="bottle"))
    with asgi_servers(1, data_dir=tmp_path) as (server,):
        assert "4 frames (2 fail, 2 pass)" in run_simulator(server, token, frames_dir, "--edge")
        second = ready_version(
            model_name="bottle",
            labels=("missing_cap", "ok", "crack"),
            mapping={"missing_cap": "missing_cap", "ok": None, "crack": "crack"},
        )
        factories.deployment(station_obj=station, version=second)
        # The device still holds version 1; the server refuses its result, it downloads v2.
        device_summary = run_simulator(server, token, frames_dir, "--edge")
    assert "4 frames" in device_summary and "0 errors" in device_summary
    edge_rows = Inspection.objects.filter(source="edge")
    assert edge_rows.count() == 8
    assert edge_rows.filter(model_version=second).count() == 4
    # Under version 2 green frames are 'ok' and red ones 'missing_cap'.
    green = hashlib.sha256((frames_dir / "b_green.jpg").read_bytes()).hexdigest()
    judged_by_second = edge_rows.filter(model_version=second)
    assert set(judged_by_second.filter(image_sha256=green).values_list("verdict", flat=True)) == {
        "pass"
    }
    assert set(judged_by_second.exclude(image_sha256=green).values_list("verdict", flat=True)) == {
        "fail"
    }
