"""Overload answered honestly: 503 fast above the frames in flight, 429 above a station's rate.

The frame POST goes through the real view: a worker that already judges as
many frames as LINESIGHT["MAX_FRAMES_IN_FLIGHT"] refuses the next one at
once with Retry-After and stores nothing; a station over its frame rate is
answered 429 while the line's other stations keep being judged.
"""

import logging
import threading
import time

import pytest
from django.db import connections
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from inspection.api.overload import frames_in_flight, station_buckets
from inspection.device import Device
from inspection.models import Inspection
from tests import factories
from tests.conftest import committed_db, stored_files
from tests.images import GREEN, RED, frame_bytes
from tests.inspection.test_api_frames import post_frame


def _frame_files(media) -> list[str]:
    return [name for name in stored_files(media) if name.startswith("frames/")]


@pytest.fixture
def api_client(frame_client):
    """Every test here runs twice: through Django's view and through the lean ASGI route."""
    return frame_client


@pytest.fixture(autouse=True)
def _fresh_buckets():
    station_buckets.clear()
    yield
    station_buckets.clear()


def test_a_frame_above_the_in_flight_limit_is_answered_503_at_once(
    line_setup, api_client, settings, _media_root
):
    settings.LINESIGHT = {**settings.LINESIGHT, "MAX_FRAMES_IN_FLIGHT": 2}
    image = frame_bytes(RED)
    # Two frames being judged right now in this worker.
    with frames_in_flight.slot(2) as first, frames_in_flight.slot(2) as second:
        assert first and second
        started = time.monotonic()
        busy = post_frame(api_client, token=line_setup["token"], image=image)
        elapsed = time.monotonic() - started

    assert busy.status_code == 503, busy.content[:300]
    assert busy["Retry-After"] == "1"
    assert "judging 2 frames already" in busy.json()["detail"]
    assert "nothing was stored" in busy.json()["detail"]
    assert elapsed < 1.0
    assert Inspection.objects.count() == 0
    assert _frame_files(_media_root) == []

    again = post_frame(api_client, token=line_setup["token"], image=image)
    assert again.status_code == 201, again.content[:300]
    assert frames_in_flight.count == 0, "every slot is given back"


def _burst(token: str, image: bytes, threads: int) -> list:
    """``threads`` frames posted at the same instant, each on its own connection."""
    barrier = threading.Barrier(threads)
    answers: list = []

    def post() -> None:
        client = APIClient(raise_request_exception=False)  # a 500 is an answer to count
        try:
            barrier.wait()
            response = post_frame(client, token=token, image=image)
            answers.append((response.status_code, response.get("Retry-After")))
        finally:
            connections.close_all()

    workers = [threading.Thread(target=post) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return answers


@committed_db
def test_concurrent_frames_beyond_the_limit_get_503_and_the_others_are_stored(
    line_setup, settings, _media_root
):
    settings.LINESIGHT = {**settings.LINESIGHT, "MAX_FRAMES_IN_FLIGHT": 1}
    image = frame_bytes(GREEN)
    answers: list = []
    for _ in range(5):  # a round may by chance run its frames one after another
        answers += _burst(line_setup["token"], image, threads=6)
        if any(status == 503 for status, _ in answers):
            break

    statuses = [status for status, _ in answers]
    assert set(statuses) <= {201, 503}, statuses
    assert 503 in statuses and 201 in statuses, statuses
    assert all(retry == "1" for status, retry in answers if status == 503)
    assert Inspection.objects.count() == statuses.count(201)
    assert len(_frame_files(_media_root)) == statuses.count(201)
    assert frames_in_flight.count == 0


def test_a_station_over_its_rate_gets_429_while_another_keeps_getting_201(
    line_setup, api_client, settings
):
    settings.LINESIGHT = {
        **settings.LINESIGHT,
        "STATION_FRAME_RATE": 0.2,
        "STATION_FRAME_BURST": 2,
    }
    other, other_token = factories.station_with_token(code="ST2", line_obj=line_setup["line"])
    factories.deployment(station_obj=other, version=line_setup["version"])
    image = frame_bytes(RED)

    looping = [post_frame(api_client, token=line_setup["token"], image=image) for _ in range(4)]
    others = [
        post_frame(APIClient(), token=other_token, station="ST2", image=image) for _ in range(2)
    ]

    assert [r.status_code for r in looping] == [201, 201, 429, 429]
    refused = looping[2]
    assert int(refused["Retry-After"]) >= 1
    detail = refused.json()["detail"]
    assert detail.startswith("Station ST1 sends more than 0.2 frames per second")
    assert f"Expected available in {refused['Retry-After']} seconds." in detail
    assert [r.status_code for r in others] == [201, 201]
    assert Inspection.objects.filter(station__code="ST1").count() == 2
    assert Inspection.objects.filter(station__code="ST2").count() == 2


def test_a_station_within_its_rate_is_never_refused(line_setup, api_client, settings):
    settings.LINESIGHT = {
        **settings.LINESIGHT,
        "STATION_FRAME_RATE": 1000,
        "STATION_FRAME_BURST": 5,
    }
    image = frame_bytes(RED)
    statuses = [
        post_frame(api_client, token=line_setup["token"], image=image).status_code for _ in range(8)
    ]
    assert statuses == [201] * 8


def test_the_frame_post_documents_429_and_503(db):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    responses = schema["paths"]["/api/v1/inspections/"]["post"]["responses"]
    assert "Retry-After" in responses["429"]["description"]
    assert "frames in flight" in responses["503"]["description"]


@committed_db
def test_the_reference_device_waits_out_a_429_and_resends_with_the_same_key(
    line_setup, live_server, settings, tmp_path, caplog
):
    settings.LINESIGHT = {**settings.LINESIGHT, "STATION_FRAME_RATE": 1, "STATION_FRAME_BURST": 1}
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(frame_bytes(GREEN))
    camera = Device(url=live_server.url, station="ST1", token=line_setup["token"], backoff=0.01)

    with caplog.at_level(logging.WARNING, logger="inspection.device"):
        answers = [camera.post(frame) for _ in range(2)]

    assert [a.status_code for a in answers] == [201, 201]
    assert any("HTTP 429; sending it again" in r.getMessage() for r in caplog.records)
    assert Inspection.objects.count() == 2
