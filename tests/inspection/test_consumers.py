"""Dashboard sockets through the real ASGI application: who may connect, what arrives, when.

Each test runs on the in-memory channel layer and again on channels-redis.
"""

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import Client

from config.asgi import application
from config.channel_layers import redis_channel_layer
from inspection import events
from tests import factories
from tests.browser import scene
from tests.conftest import committed_db

pytestmark = committed_db

ORIGIN = b"http://127.0.0.1"

# Every socket a test opens, so the test's end can hang them up.
_opened: list[WebsocketCommunicator] = []


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-pubsub", marks=pytest.mark.redis),
    ]
)
def layer(request, settings):
    if request.param == "memory":
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    else:
        redis_url = request.getfixturevalue("redis_url")
        settings.CHANNEL_LAYERS = {
            "default": redis_channel_layer(
                redis_url, kind=request.param, prefix=f"test-{uuid.uuid4().hex[:8]}"
            )
        }
    yield request.param


@pytest.fixture(autouse=True)
async def _hang_up_every_socket():
    """Send each socket's disconnect, as the ASGI server does after a close or a refusal.

    A refused socket's consumer otherwise stays in its channel layer receive
    until the event loop is torn down, and cancelling it there can leave
    channels-redis waiting on Redis for good (a CI run hung on it).
    """
    yield
    while _opened:
        await _opened.pop().disconnect()


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def socket(path: str, user=None, origin: bytes = ORIGIN) -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", session_cookie(user)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    _opened.append(communicator)
    return communicator


async def joined(path: str, user) -> WebsocketCommunicator:
    communicator = await sync_to_async(socket)(path, user)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=2))["type"] == "hello"
    return communicator


async def next_event(communicator, timeout: float = 3) -> dict:
    return await communicator.receive_json_from(timeout=timeout)


@pytest.fixture
def plant():
    return scene.build(line_code="L-A")


# --- Who may connect -----------------------------------------------------------------


async def test_anonymous_socket_is_refused(layer, plant):
    communicator = socket("/ws/lines/L-A/")
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4401


async def test_foreign_origin_is_refused(layer, plant):
    user = await sync_to_async(factories.inspector)()
    communicator = await sync_to_async(socket)("/ws/lines/L-A/", user, b"http://evil.example")
    connected, _ = await communicator.connect()
    assert not connected


async def test_accounts_without_the_dashboard_permission_are_refused(layer, plant):
    for make in (factories.viewer, factories.user):
        user = await sync_to_async(make)()
        communicator = await sync_to_async(socket)("/ws/lines/L-A/", user)
        connected, code = await communicator.connect()
        assert (connected, code) == (False, 4403)


async def test_unknown_line_is_refused(layer, plant):
    user = await sync_to_async(factories.inspector)()
    communicator = await sync_to_async(socket)("/ws/lines/NOPE/", user)
    assert await communicator.connect() == (False, 4404)


async def test_review_socket_is_for_inspectors(layer, plant):
    engineer = await sync_to_async(factories.engineer)()
    communicator = await sync_to_async(socket)("/ws/review/", engineer)
    assert await communicator.connect() == (False, 4403)
    line = await joined("/ws/lines/L-A/", engineer)  # engineers watch lines
    await line.disconnect()


# --- What arrives ---------------------------------------------------------------------


async def test_line_dashboard_gets_its_frames_and_not_other_lines(layer, plant):
    user = await sync_to_async(factories.inspector)()
    other = await sync_to_async(scene.build)(line_code="L-B")
    communicator = await joined("/ws/lines/L-A/", user)
    await sync_to_async(scene.frame)(other.deployments[0], verdict="pass")
    frame = await sync_to_async(scene.frame)(plant.deployments[1], verdict="fail")
    event = await next_event(communicator)
    assert event["type"] == "inspection.created"
    assert event["inspection"]["id"] == frame.pk
    assert event["inspection"]["station"] == plant.stations[1].code
    assert event["inspection"]["verdict"] == "fail"
    assert event["inspection"]["defect_severity"] == "critical"
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_rolled_back_frame_is_never_announced(layer, plant):
    user = await sync_to_async(factories.inspector)()
    communicator = await joined("/ws/lines/L-A/", user)

    def write_then_fail():
        with transaction.atomic():
            scene.frame(plant.deployments[0], verdict="fail")
            raise RuntimeError("storage failed")

    with pytest.raises(RuntimeError):
        await sync_to_async(write_then_fail)()
    assert await communicator.receive_nothing(timeout=0.5)
    kept = await sync_to_async(scene.frame)(plant.deployments[0], verdict="pass")
    assert (await next_event(communicator))["inspection"]["id"] == kept.pk
    await communicator.disconnect()


async def test_review_queue_gets_new_pending_frames_claims_and_decisions(layer, plant):
    alice = await sync_to_async(factories.inspector)(username="alice")
    communicator = await joined("/ws/review/", alice)
    await sync_to_async(scene.frame)(plant.deployments[0], verdict="pass")  # not for review
    frame = await sync_to_async(scene.frame)(plant.deployments[0], verdict="fail")
    created = await next_event(communicator)
    assert (created["type"], created["inspection"]["id"]) == ("inspection.created", frame.pk)

    from inspection import services

    bob = await sync_to_async(factories.inspector)(username="bob")
    await sync_to_async(services.review_claim)(inspection=frame, inspector=bob)
    claimed = await next_event(communicator)
    assert claimed["type"] == "review.claimed"
    assert claimed["claim"] == {**claimed["claim"], "inspection": frame.pk, "by": "bob"}
    await sync_to_async(services.review_decide)(inspection=frame, inspector=bob, decision="reject")
    verified = await next_event(communicator)
    assert verified["type"] == "inspection.verified"
    assert verified["verification"]["inspector"] == "bob"
    assert verified["inspection"]["review_status"] == "verified"
    await communicator.disconnect()


async def test_deployment_change_reaches_the_line(layer, plant):
    user = await sync_to_async(factories.engineer)()
    communicator = await joined("/ws/lines/L-A/", user)

    def activate_v2():
        version = factories.version_row(labels=("ok", "missing_cap", "crack"))
        factories.deployment(station_obj=plant.stations[0], version=version)
        return version

    version = await sync_to_async(activate_v2)()
    event = await next_event(communicator)
    assert event["type"] == "deployment.changed"
    assert event["station"] == plant.stations[0].code
    assert (event["model"], event["version"]) == (version.model.name, version.number)

    from models_registry.services import deployment_deactivate

    await sync_to_async(deployment_deactivate)(deployment=plant.deployments[1])
    event = await next_event(communicator)
    assert (event["station"], event["deployment"], event["model"]) == (
        plant.stations[1].code,
        None,
        None,
    )
    await communicator.disconnect()


async def test_plant_overview_follows_every_line(layer, plant):
    other = await sync_to_async(scene.build)(line_code="L-B")
    user = await sync_to_async(factories.inspector)()
    communicator = await joined("/ws/plant/", user)
    first = await sync_to_async(scene.frame)(plant.deployments[0], verdict="pass")
    second = await sync_to_async(scene.frame)(other.deployments[0], verdict="fail")
    seen = {(await next_event(communicator))["inspection"]["id"] for _ in range(2)}
    assert seen == {first.pk, second.pk}
    await communicator.disconnect()


async def test_every_open_dashboard_gets_each_event_once(layer, plant):
    users = [await sync_to_async(factories.inspector)() for _ in range(3)]
    sockets = [await joined("/ws/lines/L-A/", user) for user in users]
    frames = [await sync_to_async(scene.frame)(plant.deployments[0]) for _ in range(5)]
    for communicator in sockets:
        ids = [(await next_event(communicator))["inspection"]["id"] for _ in frames]
        assert ids == [f.pk for f in frames]
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()


async def test_a_closed_dashboard_leaves_its_groups(layer, plant):
    user = await sync_to_async(factories.inspector)()
    communicator = await joined("/ws/lines/L-A/", user)
    await communicator.disconnect()
    channel_layer = get_channel_layer()
    if layer == "memory":
        assert not channel_layer.groups.get(events.line_group("L-A"))
    elif layer == "redis-pubsub":
        assert not channel_layer._get_layer().groups  # this process holds no member any more
    else:
        async with channel_layer.connection(channel_layer.consistent_hash("x")) as conn:
            key = channel_layer._group_key(events.line_group("L-A"))
            assert await conn.zcard(key) == 0
    await asyncio.sleep(0)


async def test_garbage_from_a_browser_is_ignored_and_ping_answered(layer, plant):
    user = await sync_to_async(factories.inspector)()
    communicator = await joined("/ws/lines/L-A/", user)
    for garbage in ["not json", "[1, 2]", '{"type": "inspection.created"}', "\u0000"]:
        await communicator.send_to(text_data=garbage)
    await communicator.send_to(bytes_data=b"\xff\x00")
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.send_json_to({"type": "ping"})
    assert await next_event(communicator) == {"type": "pong"}
    frame = await sync_to_async(scene.frame)(plant.deployments[0])
    assert (await next_event(communicator))["inspection"]["id"] == frame.pk
    await communicator.disconnect()


async def test_an_idle_dashboard_stays_connected_past_redis_timeouts(layer, plant):
    # redis-py 8 cut channels_redis' blocking waits after 5 s and crashed idle consumers.
    user = await sync_to_async(factories.inspector)()
    communicator = await joined("/ws/lines/L-A/", user)
    assert await communicator.receive_nothing(timeout=7, interval=0.5)
    frame = await sync_to_async(scene.frame)(plant.deployments[0], verdict="fail")
    event = await next_event(communicator)
    assert (event["type"], event["inspection"]["id"]) == ("inspection.created", frame.pk)
    await communicator.disconnect()
