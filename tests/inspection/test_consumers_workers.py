"""Two real uvicorn worker processes sharing the database and Redis: an event raised by a
request on one worker reaches dashboards connected to the other."""

import asyncio
import json
import uuid

import pytest
import requests
import websockets
from django.conf import settings
from django.test import Client

from tests import factories
from tests.conftest import committed_db
from tests.images import GREEN, frame_bytes
from tests.registry import ready_version
from tests.servers import asgi_servers

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    committed_db,
]


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def first_event(url: str, path: str, cookie: str, trigger, timeout: float = 10.0) -> dict:
    """Connect to ``url``+``path``, run ``trigger`` once joined, return the first event."""
    ws_url = url.replace("http://", "ws://") + path
    async with websockets.connect(
        ws_url, additional_headers={"Cookie": cookie, "Origin": url}
    ) as socket:
        hello = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        assert hello["type"] == "hello"
        result = await asyncio.to_thread(trigger)
        event = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        return {"event": event, "trigger": result}


@pytest.fixture(params=["redis", "redis-pubsub"])
def workers(request, redis_url, tmp_path, _media_root):
    plant = factories.plant(code="PL1")
    line = factories.line(code="L1", plant_obj=plant)
    station, token = factories.station_with_token(code="ST1", line_obj=line)
    version = ready_version(model_name="bottle")
    factories.deployment(station_obj=station, version=version, confidence_threshold=0.8)
    env = {
        "LINESIGHT_SECRET_KEY": settings.SECRET_KEY,  # sessions made here are valid there
        "LINESIGHT_CHANNEL_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        "LINESIGHT_CHANNEL_LAYER": request.param,
    }
    with asgi_servers(2, data_dir=tmp_path, redis_url=redis_url, extra_env=env) as servers:
        yield {"servers": servers, "token": token}


def test_a_frame_posted_to_one_worker_reaches_a_dashboard_on_the_other(workers):
    worker_a, worker_b = workers["servers"]
    cookie = session_cookie(factories.inspector())

    def post_to_a():
        response = requests.post(
            f"{worker_a.url}/api/v1/inspections/",
            headers={"Authorization": f"Token {workers['token']}"},
            data={"station": "ST1"},
            files={"image": ("f.jpg", frame_bytes(GREEN), "image/jpeg")},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()

    got = asyncio.run(first_event(worker_b.url, "/ws/lines/L1/", cookie, post_to_a))
    assert got["event"]["type"] == "inspection.created"
    assert got["event"]["inspection"]["id"] == got["trigger"]["id"]
    assert got["event"]["inspection"]["verdict"] == "fail"


def test_a_decision_on_one_worker_reaches_the_review_queue_on_the_other(workers):
    worker_a, worker_b = workers["servers"]
    frame = requests.post(
        f"{worker_b.url}/api/v1/inspections/",
        headers={"Authorization": f"Token {workers['token']}"},
        data={"station": "ST1"},
        files={"image": ("f.jpg", frame_bytes(GREEN), "image/jpeg")},
        timeout=30,
    ).json()
    alice = factories.inspector(username="alice")
    token = factories.api_token(alice)

    def decide_on_b():
        response = requests.post(
            f"{worker_b.url}/api/v1/inspections/{frame['id']}/verifications/",
            json={"decision": "confirm"},
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()

    got = asyncio.run(first_event(worker_a.url, "/ws/review/", session_cookie(alice), decide_on_b))
    assert got["event"]["type"] == "inspection.verified"
    assert got["event"]["verification"]["id"] == got["trigger"]["id"]
    assert got["event"]["verification"]["inspector"] == "alice"


def test_worker_sockets_refuse_strangers(workers):
    worker_a, _ = workers["servers"]

    async def attempt(headers):
        async with websockets.connect(
            worker_a.url.replace("http://", "ws://") + "/ws/lines/L1/", additional_headers=headers
        ):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as anonymous:
        asyncio.run(attempt({"Origin": worker_a.url}))
    assert anonymous.value.response.status_code == 403
    cookie = session_cookie(factories.inspector())
    with pytest.raises(websockets.exceptions.InvalidStatus) as foreign:
        asyncio.run(attempt({"Origin": "http://evil.example", "Cookie": cookie}))
    assert foreign.value.response.status_code == 403


def test_the_pubsub_layer_is_chosen_by_environment():
    from tests.test_config import run_manage, settings_under

    values = settings_under(
        {"REDIS_URL": "redis://cache.plant:6379/0", "LINESIGHT_CHANNEL_LAYER": "redis-pubsub"}
    )
    assert values["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    result = run_manage(
        "check",
        env={"LINESIGHT_SECRET_KEY": "x" * 60, "LINESIGHT_CHANNEL_LAYER": "rabbit"},
    )
    assert result.returncode != 0
    assert "LINESIGHT_CHANNEL_LAYER must be redis or redis-pubsub" in result.stderr
