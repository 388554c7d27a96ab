"""Outages answered honestly: a frame that is stored is answered 201 whatever the events do.

Live events go through the real channels_redis layer, pointed at a port where
nothing listens, or at a Redis of the test's own that it stops and starts
again in the middle of a burst (the shared Redis is never touched).
"""

import asyncio
import logging
import shutil
import socket
import subprocess
import time
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from config.channel_layers import BACKENDS, redis_channel_layer
from inspection.models import Inspection
from tests.conftest import committed_db, missing_service
from tests.images import GREEN, frame_bytes
from tests.inspection.test_api_frames import post_frame
from tests.servers import free_port

pytestmark = [committed_db]


@pytest.fixture
def api_client(frame_client):
    """Every test here runs twice: through Django's view and through the lean ASGI route."""
    return frame_client


@pytest.fixture(
    params=[(kind, mode) for kind in sorted(BACKENDS) for mode in ("refused", "silent")],
    ids=lambda param: "-".join(param),
)
def dead_redis_layer(request, settings):
    """The real channels_redis layer (either kind) at a Redis that is not there.

    ``refused``: nothing listens on the port. ``silent``: something accepts the
    connection and never answers (a hung Redis, a black-holed network).
    """
    kind, mode = request.param
    port = free_port()
    silent = socket.create_server(("127.0.0.1", port)) if mode == "silent" else None
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            f"redis://127.0.0.1:{port}/0", kind=kind, prefix=uuid.uuid4().hex[:8]
        )
    }
    yield
    if silent is not None:
        silent.close()


def test_a_stored_frame_is_answered_201_when_redis_is_down(
    line_setup, api_client, dead_redis_layer, caplog
):
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="inspection.events"):
        response = post_frame(api_client, token=line_setup["token"], image=frame_bytes(GREEN))

    assert response.status_code == 201, response.content[:500]
    assert response.json()["verdict"] == "fail"
    assert list(Inspection.objects.values_list("id", flat=True)) == [response.json()["id"]]
    assert time.monotonic() - started < 5, "the camera waited on the dead channel layer"
    warnings = [r for r in caplog.records if r.name == "inspection.events"]
    assert len(warnings) == 1
    assert "inspection.created not sent" in warnings[0].getMessage()


class OwnRedis:
    """A redis-server of the test's own on a free port, stopped and started at will."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], check=False)
            self.process.wait(timeout=10)


@pytest.fixture(params=sorted(BACKENDS))
def own_redis(request, settings, tmp_path):
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing_service("redis-server/redis-cli not installed: the Redis restart test needs them")
    redis = OwnRedis(tmp_path)
    redis.start()
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(redis.url, kind=request.param, prefix="restart")
    }
    try:
        yield redis
    finally:
        redis.stop()


def _event_after(post) -> dict:
    """Join the line's group, call ``post`` (sync, in a thread), return the event received."""

    async def run() -> dict:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("line.L1", channel)
        result = await asyncio.to_thread(post)
        event = await asyncio.wait_for(layer.receive(channel), 10)
        return {"event": event, "result": result}

    return async_to_sync(run)()


@pytest.mark.redis
def test_frames_through_a_redis_restart_are_answered_201_and_events_resume(
    line_setup, api_client, own_redis
):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    image = frame_bytes(GREEN)
    statuses = [post_frame(api_client, image=image).status_code for _ in range(3)]

    own_redis.stop()
    statuses += [post_frame(api_client, image=image).status_code for _ in range(5)]
    own_redis.start()
    statuses += [post_frame(api_client, image=image).status_code for _ in range(3)]

    assert statuses == [201] * 11
    assert Inspection.objects.count() == 11  # once each: nothing for a camera to retry
    # The layer reconnects by itself: a dashboard joining now gets the next frame live.
    got = _event_after(lambda: post_frame(api_client, image=image).json())
    assert got["event"]["type"] == "inspection.created"
    assert got["event"]["inspection"]["id"] == got["result"]["id"]
