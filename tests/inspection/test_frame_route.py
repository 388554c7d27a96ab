"""The lean frame route answers exactly as Django's view does, and takes only devices' frames."""

import asyncio
import logging
import socket
from functools import partial

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import request_started
from rest_framework.test import APIClient

from config.channel_layers import redis_channel_layer
from inspection.api.frames_asgi import FrameRoute
from inspection.events import SEND_TIMEOUT_SECONDS
from inspection.models import Inspection
from tests import factories
from tests.conftest import committed_db
from tests.images import GREEN, RED, frame_bytes
from tests.inspection.lean_client import LeanFrameClient
from tests.servers import free_port

URL = "/api/v1/inspections/"

# Headers that differ between two correct answers (the new row's address, its size).
PER_ANSWER = {"location", "content-length"}


@pytest.fixture
def handlers():
    """Who handled each request that reached a server handler: the lean route or Django."""
    seen: list[str] = []

    def record(sender, **kwargs):
        seen.append("lean" if sender is FrameRoute else "django")

    request_started.connect(record, dispatch_uid="test-frame-route-handlers")
    yield seen
    request_started.disconnect(dispatch_uid="test-frame-route-handlers")


def _post(client, token, *, image=None, images=1, headers=None, **fields):
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    payload = {"station": "ST1", **fields}
    if image is not None:
        files = [SimpleUploadedFile(f"f{i}.jpg", image, "image/jpeg") for i in range(images)]
        payload["image"] = files[0] if images == 1 else files
    return client.post(URL, payload, format="multipart", headers=headers or {})


def _answer(response) -> dict:
    # A page (the browsable API, Django's 400 page) is compared by its status and headers.
    body = response.json() if response["Content-Type"] == "application/json" else None
    shown = {
        "status": response.status_code,
        "headers": {
            name.lower(): value
            for name, value in response.headers.items()
            if name.lower() not in PER_ANSWER
        },
    }
    if isinstance(body, dict) and "id" in body:  # a stored frame: its fields, not its values
        shown["keys"] = sorted(body)
        shown["verdict"] = body["verdict"]
    else:
        shown["body"] = body
    return shown


def _both(request_for):
    """The answers of Django's view and of the lean route to the same request."""
    return _answer(request_for(APIClient(), "a")), _answer(request_for(LeanFrameClient(), "b"))


@pytest.fixture
def other_station(line_setup):
    """A second station on the line, with a token and no deployment."""
    return factories.station_with_token(code="ST2", line_obj=line_setup["line"])


def test_the_lean_route_answers_good_and_bad_frames_as_django_does(
    line_setup, other_station, settings, handlers
):
    token = line_setup["token"]
    _, idle_token = other_station
    image, other_image = frame_bytes(RED), frame_bytes(GREEN)
    cases = {
        "a good frame": lambda c, k: _post(c, token, image=image),
        "no image": lambda c, k: _post(c, token),
        "two images": lambda c, k: _post(c, token, image=image, images=2),
        "unknown station": lambda c, k: _post(c, token, image=image, station="NOPE"),
        "another station's code": lambda c, k: _post(c, idle_token, image=image),
        "an unknown token": lambda c, k: _post(c, "lss_" + "x" * 40, image=image),
        "a station without a model": lambda c, k: _post(c, idle_token, image=image, station="ST2"),
        "a bad capture time": lambda c, k: _post(c, token, image=image, captured_at="1970-01-01"),
        "a partial edge result": lambda c, k: _post(c, token, image=image, label="ok"),
        "a malformed key": lambda c, k: _post(
            c, token, image=image, headers={"Idempotency-Key": "a key"}
        ),
        "header and field keys differ": lambda c, k: _post(
            c, token, image=image, frame_id="x", headers={"Idempotency-Key": "y"}
        ),
        "a retry": lambda c, k: (
            _post(c, token, image=image, frame_id="retry"),
            _post(c, token, image=image, frame_id="retry"),
        )[1],
        "a key reused for another image": lambda c, k: (
            _post(c, token, image=image, frame_id="reuse"),
            _post(c, token, image=other_image, frame_id="reuse"),
        )[1],
        "a browser asking for HTML": lambda c, k: _post(
            c, token, image=image, headers={"Accept": "text/html"}
        ),
        "a host not allowed": lambda c, k: _post(
            c, token, image=image, headers={"Host": "evil.example"}
        ),
    }
    statuses = {}
    for name, request_for in cases.items():
        django, lean = _both(request_for)
        assert lean == django, name
        statuses[name] = django["status"]
    assert statuses == {
        "a good frame": 201,
        "no image": 400,
        "two images": 400,
        "unknown station": 400,
        "another station's code": 403,
        "an unknown token": 401,
        "a station without a model": 409,
        "a bad capture time": 400,
        "a partial edge result": 400,
        "a malformed key": 400,
        "header and field keys differ": 400,
        "a retry": 200,
        "a key reused for another image": 422,
        "a browser asking for HTML": 201,
        "a host not allowed": 400,
    }
    # Every frame of the lean client (17: two cases post twice) reached the lean route;
    # it handed two to Django (the browsable API's HTML, a host the middleware turns away).
    assert handlers.count("lean") == 17
    assert handlers.count("django") == 17 + 2


def test_size_limit_and_overload_answers_are_django_s(line_setup, settings):
    token = line_setup["token"]
    settings.LINESIGHT = {**settings.LINESIGHT, "MAX_FRAME_BYTES": 1_000}
    big = frame_bytes(RED, size=(320, 240), quality=100)
    assert len(big) > 1_000
    django, lean = _both(lambda c, k: _post(c, token, image=big))
    assert lean == django and django["status"] == 413

    settings.LINESIGHT = {**settings.LINESIGHT, "STATION_FRAME_RATE": 1, "STATION_FRAME_BURST": 1}
    from inspection.api.overload import station_buckets

    answers = []
    for client in (APIClient(), LeanFrameClient()):
        station_buckets.clear()
        _post(client, token, image=frame_bytes(RED))
        answers.append(_answer(_post(client, token, image=frame_bytes(RED))))
    assert answers[0] == answers[1] and answers[0]["status"] == 429
    assert answers[0]["headers"]["retry-after"] == "1"


def test_the_security_headers_of_api_answers_are_on_lean_answers(line_setup):
    response = _post(LeanFrameClient(), line_setup["token"], image=frame_bytes(RED))
    assert response.status_code == 201
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Content-Type"] == "application/json"
    assert response["Location"].endswith(f"/api/v1/inspections/{response.json()['id']}/")


def test_a_lean_frame_is_stored_with_its_latency_from_arrival(line_setup, handlers):
    response = _post(LeanFrameClient(), line_setup["token"], image=frame_bytes(GREEN))
    assert handlers == ["lean"]
    body = response.json()
    stored = Inspection.objects.get(pk=body["id"])
    assert (stored.verdict, stored.label) == ("fail", "missing_cap")
    assert stored.latency_ms == body["latency_ms"] > 0


def test_other_requests_on_the_frames_path_stay_with_django(line_setup, handlers):
    client = LeanFrameClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    _post(client, line_setup["token"], image=frame_bytes(RED))
    listed = client.get(URL)
    assert listed.status_code == 200 and len(listed.json()["results"]) == 1
    # No credentials (or a user's token or session) is Django's to answer too.
    anonymous = LeanFrameClient().post(URL, {"station": "ST1"}, format="multipart")
    assert anonymous.status_code == 401
    assert handlers == ["lean", "django", "django"]


@committed_db
def test_the_device_has_its_answer_before_a_hung_channel_layer_gives_up(
    line_setup, settings, caplog
):
    # Something accepts the connection and never answers: a hung Redis.
    port = free_port()
    hung = socket.create_server(("127.0.0.1", port))
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(f"redis://127.0.0.1:{port}/0", kind="redis", prefix="hung")
    }
    try:
        with caplog.at_level(logging.WARNING, logger="inspection.events"):
            response = _post(LeanFrameClient(), line_setup["token"], image=frame_bytes(GREEN))
    finally:
        hung.close()
    assert response.status_code == 201
    assert Inspection.objects.filter(pk=response.json()["id"]).exists()
    # The answer went out at once; the route then waited out the layer (SEND_TIMEOUT_SECONDS).
    assert response.answered_after < 1.0
    assert response.returned_after >= SEND_TIMEOUT_SECONDS
    assert [r.getMessage()[:35] for r in caplog.records if r.name == "inspection.events"] == [
        "Live event inspection.created not s"
    ]


@committed_db
def test_a_lean_frame_reaches_the_line_s_dashboards_after_commit(line_setup):
    client = LeanFrameClient()

    async def run() -> tuple[dict, dict]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("line.L1", channel)
        post = partial(_post, client, line_setup["token"], image=frame_bytes(GREEN))
        body = (await asyncio.to_thread(post)).json()
        event = await asyncio.wait_for(layer.receive(channel), 10)
        return body, event

    body, event = async_to_sync(run)()
    assert event["type"] == "inspection.created"
    assert event["inspection"]["id"] == body["id"]
    assert event["inspection"]["verdict"] == "fail"
