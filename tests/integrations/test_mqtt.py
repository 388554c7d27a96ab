"""MQTT against a real Mosquitto: every frame and decision of a burst, in order, with state.

A private broker per module (tests/integrations/broker.py), the real sender
process (``manage.py mqtt_sender``) on the test database, frames posted
through the API and judged by a real tiny TensorFlow model.
"""

import time
import uuid

import pytest

from common.models import OutboxMessage
from inspection.models import Inspection
from inspection.services import verification_record
from tests import factories
from tests.conftest import committed_db
from tests.images import BLUE, GREEN, GREY, RED, frame_bytes
from tests.inspection.test_api_frames import post_frame
from tests.integrations.broker import (
    SENDER_APPLICATION_NAME,
    Broker,
    SenderProcess,
    Subscriber,
    first_seen,
)
from tests.registry import ready_version

pytestmark = [committed_db]

COLOURS = [RED, GREEN, BLUE, GREY]  # pass, fail (missing_cap), fail (crack), review


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def mqtt_on(settings, broker):
    """MQTT configured in this process too, so outbox rows wait for the sender."""
    settings.MQTT_HOST = "127.0.0.1"
    settings.MQTT_PORT = broker.port
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def two_stations(mqtt_on):
    plant = factories.plant(code="PL1")
    line = factories.line(code="L1", plant_obj=plant)
    version = ready_version(model_name="bottle")
    stations = {}
    for code in ("ST1", "ST2"):
        station, token = factories.station_with_token(code=code, line_obj=line)
        factories.deployment(station_obj=station, version=version, confidence_threshold=0.8)
        stations[code] = token
    return stations


@pytest.fixture
def subscriber(broker, mqtt_on):
    subscriber = Subscriber(broker.port, mqtt_on)
    yield subscriber
    subscriber.close()


@pytest.fixture
def sender(broker, mqtt_on, tmp_path):
    sender = SenderProcess(broker.port, mqtt_on, tmp_path)
    yield sender
    sender.stop()


def post_burst(api_client, stations: dict, count: int) -> dict[str, list[dict]]:
    """``count`` frames, alternating stations and cycling colours; the answers per station."""
    answers: dict[str, list[dict]] = {code: [] for code in stations}
    for index in range(count):
        code = sorted(stations)[index % len(stations)]
        response = post_frame(
            api_client,
            token=stations[code],
            station=code,
            image=frame_bytes(COLOURS[index % len(COLOURS)]),
            serial=f"SN-{index}",
            lot="LOT-7",
        )
        assert response.status_code == 201, response.content[:300]
        answers[code].append(response.json())
    return answers


def test_a_burst_of_frames_and_decisions_reaches_a_subscriber_in_order(
    two_stations, subscriber, sender, mqtt_on, api_client
):
    sender.start()
    answers = post_burst(api_client, two_stations, 24)
    inspector = factories.inspector()
    decided = [a["id"] for a in answers["ST1"] if a["verdict"] != "pass"][:3]
    for pk in decided:
        verification_record(
            inspection=Inspection.objects.get(pk=pk), inspector=inspector, decision="confirm"
        )

    subscriber.wait_for(
        lambda ms: (
            len(first_seen([m for m in ms if m.topic.endswith("/inspections")])) == 24
            and len([m for m in ms if m.topic.endswith("/verifications")]) >= 3
        )
    )

    for code, sent in answers.items():
        topic = f"{mqtt_on}/PL1/L1/{code}/inspections"
        seen = [m.body for m in first_seen(subscriber.on("inspections")) if m.topic == topic]
        assert [body["data"]["id"] for body in seen] == [a["id"] for a in sent]
        assert [body["data"]["verdict"] for body in seen] == [a["verdict"] for a in sent]
        assert all(body["schema"] == "linesight.event/1" for body in seen)
        assert all(body["type"] == "inspection.judged" for body in seen)

    rejects = first_seen(subscriber.on("reject"))
    fails = [
        (a["id"], a["serial"]) for sent in answers.values() for a in sent if a["verdict"] == "fail"
    ]
    assert sorted((m.body["data"]["id"], m.body["data"]["serial"]) for m in rejects) == sorted(
        fails
    )
    assert all(m.body["data"]["lot"] == "LOT-7" for m in rejects)
    assert {m.body["data"]["verdict"] for m in rejects} == {"fail"}

    verifications = first_seen(subscriber.on("verifications"))
    assert [m.body["data"]["inspection"]["id"] for m in verifications] == decided
    assert {m.body["data"]["verification"]["decision"] for m in verifications} == {"confirm"}
    wait_all_sent()


def test_a_late_subscriber_gets_each_stations_last_state_retained(
    broker, two_stations, sender, mqtt_on, api_client
):
    sender.start()
    answers = post_burst(api_client, two_stations, 6)
    wait_all_sent()

    late = Subscriber(broker.port, mqtt_on, persistent=False)
    try:
        states = late.wait_for(lambda ms: len([m for m in ms if m.retain]) >= 2)
    finally:
        late.close()
    for code, sent in answers.items():
        state = next(m for m in states if m.topic == f"{mqtt_on}/PL1/L1/{code}/state")
        assert state.retain
        assert state.body["type"] == "station.state"
        assert state.body["data"]["verdict"] == sent[-1]["verdict"]
        assert state.body["data"]["inspection"] == sent[-1]["id"]
        assert state.body["data"]["model_version"] == sent[-1]["model_version"]


def test_a_deployment_change_is_published_and_updates_the_state(
    two_stations, subscriber, sender, mqtt_on
):
    from masterdata.models import Station
    from models_registry.services import deployment_deactivate

    sender.start()
    station = Station.objects.get(code="ST2")
    deployment_deactivate(deployment=station.deployments.get(is_active=True))

    deployments = subscriber.wait_for(
        lambda ms: any(
            m.topic.endswith("ST2/deployments") and m.body["data"]["action"] != "activate"
            for m in ms
        )
    )
    ours = [m for m in deployments if m.topic == f"{mqtt_on}/PL1/L1/ST2/deployments"]
    assert ours[-1].body["data"]["model_version"] is None
    state = subscriber.wait_for(
        lambda ms: any(
            m.topic.endswith("ST2/state")
            and m.body["data"]["changed_by"] == "deployment.changed"
            and m.body["data"]["model_version"] is None
            for m in ms
        )
    )
    assert state


def test_a_frame_rolled_back_leaves_no_message(
    two_stations, subscriber, sender, mqtt_on, api_client
):
    from django.db import transaction

    sender.start()
    before = OutboxMessage.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        response = post_frame(
            api_client, token=two_stations["ST1"], station="ST1", image=frame_bytes(GREEN)
        )
        assert response.status_code == 201
        assert OutboxMessage.objects.count() == before + 1
        raise RuntimeError("the caller's transaction fails after the frame")
    assert OutboxMessage.objects.count() == before

    answers = post_burst(api_client, {"ST1": two_stations["ST1"]}, 1)
    seen = subscriber.wait_for(lambda ms: any(m.topic.endswith("/inspections") for m in ms))
    inspections = [m.body["data"]["id"] for m in seen if m.topic.endswith("/inspections")]
    assert inspections == [answers["ST1"][0]["id"]]
    assert not subscriber.on("reject")


def wait_all_sent(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while OutboxMessage.objects.filter(mqtt_sent_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the sender did not mark everything sent"
        time.sleep(0.05)


def assert_everything_once_in_order(subscriber, mqtt_on, answers: dict[str, list[dict]]) -> None:
    """Each frame on ``inspections`` in its station's order; repeats only of the same message."""
    received = subscriber.on("inspections")
    by_id: dict[str, bytes] = {}
    for message in received:
        earlier = by_id.setdefault(message.body["id"], message.body)
        assert earlier == message.body, "a repeat differs from the message it repeats"
    kept = first_seen(received)
    for code, sent in answers.items():
        topic = f"{mqtt_on}/PL1/L1/{code}/inspections"
        assert [m.body["data"]["id"] for m in kept if m.topic == topic] == [a["id"] for a in sent]


def test_a_broker_away_for_10_s_mid_burst_loses_nothing_and_never_delays_a_frame(
    broker, two_stations, subscriber, sender, mqtt_on, api_client
):
    sender.start()
    answers: dict[str, list[dict]] = {"ST1": [], "ST2": []}
    slowest = 0.0

    def post_for(seconds: float) -> None:
        nonlocal slowest
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            for code, sent in post_burst(api_client, two_stations, 2).items():
                answers[code] += sent
            slowest = max(slowest, (time.monotonic() - started) / 2)
            time.sleep(0.1)

    post_for(1.5)
    subscriber.wait_for(lambda ms: len(ms) > 0)
    broker.stop()
    post_for(10.0)  # the broker is away
    broker.start()
    post_for(1.5)
    total = sum(len(sent) for sent in answers.values())
    subscriber.wait_for(lambda ms: len(first_seen(subscriber.on("inspections"))) >= total, 30)

    assert slowest < 1.0, f"a frame waited {slowest:.2f} s while the broker was away"
    assert_everything_once_in_order(subscriber, mqtt_on, answers)
    wait_all_sent()
    assert "MQTT broker unavailable" in sender.log()


def test_a_sender_killed_mid_batch_and_restarted_loses_nothing(
    two_stations, subscriber, sender, mqtt_on, api_client
):
    answers = post_burst(api_client, two_stations, 40)  # a backlog: one batch of 120 messages
    subscriber.on_first_message = sender.kill  # SIGKILL as the batch's first message arrives
    sender.start()
    subscriber.wait_for(lambda ms: len(ms) >= 1)
    sender.process.wait(timeout=10)
    unmarked = OutboxMessage.objects.filter(mqtt_sent_at__isnull=True).count()
    assert unmarked > 0, "the sender finished before it was killed: nothing was tested"
    for code, sent in post_burst(api_client, two_stations, 4).items():
        answers[code] += sent

    sender.start()
    subscriber.wait_for(lambda ms: len(first_seen(subscriber.on("inspections"))) >= 44, 30)
    assert_everything_once_in_order(subscriber, mqtt_on, answers)
    wait_all_sent()


def test_the_sender_outlives_its_database_connections_being_cut(
    two_stations, subscriber, sender, mqtt_on, api_client
):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("A database server restart (connections cut) is a PostgreSQL matter.")
    sender.start()
    first = post_burst(api_client, two_stations, 2)
    subscriber.wait_for(lambda ms: len(first_seen(subscriber.on("inspections"))) >= 2)
    with connection.cursor() as cursor:  # what a restart does to the sender's sessions
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [SENDER_APPLICATION_NAME],
        )
        assert len(cursor.fetchall()) >= 2  # its queries and its LISTEN
    later = post_burst(api_client, two_stations, 4)

    subscriber.wait_for(lambda ms: len(first_seen(subscriber.on("inspections"))) >= 6, 30)
    answers = {code: first[code] + later[code] for code in first}
    assert_everything_once_in_order(subscriber, mqtt_on, answers)
    assert sender.process.poll() is None, sender.log()
    assert "Database unavailable" in sender.log()


def test_delivered_messages_are_pruned_after_the_retention_and_pending_ones_kept(mqtt_on):
    from datetime import timedelta

    from django.utils import timezone

    from common.outbox import JOB_FINISHED, outbox_add, outbox_prune

    def job_event(age_hours: float, *, mqtt: bool, webhooks: bool) -> int:
        message = outbox_add(JOB_FINISHED, scope=None, data={"kind": "export"})
        when = timezone.now() - timedelta(hours=age_hours)
        OutboxMessage.objects.filter(pk=message.pk).update(
            created_at=when,
            mqtt_sent_at=when if mqtt else None,
            webhooks_sent_at=when if webhooks else None,
        )
        return message.pk

    old_done = job_event(30, mqtt=True, webhooks=True)
    old_mqtt_pending = job_event(30, mqtt=False, webhooks=True)
    old_webhooks_pending = job_event(30, mqtt=True, webhooks=False)
    recent_done = job_event(1, mqtt=True, webhooks=True)

    assert outbox_prune(older_than=timedelta(hours=24), batch=1) == 1
    left = set(OutboxMessage.objects.values_list("pk", flat=True))
    assert old_done not in left
    assert {old_mqtt_pending, old_webhooks_pending, recent_done} <= left


def test_the_outbox_admin_shows_the_backlog_pending_for_mqtt(client, two_stations, api_client):
    post_burst(api_client, two_stations, 2)
    OutboxMessage.objects.filter(type="deployment.changed").update(mqtt_sent_at=timezone_now())
    client.force_login(factories.user(is_staff=True, is_superuser=True))

    pending = client.get("/admin/common/outboxmessage/", {"mqtt_pending": "yes"})
    assert pending.status_code == 200
    listed = [message.type for message in pending.context["cl"].result_list]
    assert listed == ["inspection.judged", "inspection.judged"]
    assert "pending for MQTT" in pending.content.decode()
    assert client.get("/admin/common/outboxmessage/add/").status_code == 403


def timezone_now():
    from django.utils import timezone

    return timezone.now()


def test_a_second_sender_stands_by_and_takes_over_when_the_first_dies(
    broker, two_stations, subscriber, sender, mqtt_on, api_client, tmp_path
):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("Senders on several hosts share PostgreSQL, never a SQLite file.")
    standby = SenderProcess(broker.port, mqtt_on, tmp_path)
    sender.start()
    first = post_burst(api_client, two_stations, 4)
    subscriber.wait_for(lambda ms: len(first_seen(subscriber.on("inspections"))) >= 4)
    standby.start()
    try:
        time.sleep(3)  # the standby is up and finds the lock taken
        second = post_burst(api_client, two_stations, 4)
        subscriber.wait_for(lambda ms: len(first_seen(subscriber.on("inspections"))) >= 8)
        assert len(subscriber.on("inspections")) == 8, "two senders published the same frames"

        sender.kill()
        third = post_burst(api_client, two_stations, 2)
        try:
            subscriber.wait_for(lambda ms: len(first_seen(subscriber.on("inspections"))) >= 10, 60)
        except AssertionError:
            raise AssertionError(f"the standby did not take over:\n{standby.log()}") from None
    finally:
        standby.stop()
    answers = {code: first[code] + second[code] + third[code] for code in first}
    assert_everything_once_in_order(subscriber, mqtt_on, answers)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("mosquitto-tls"), secure=True)
    broker.start()
    yield broker
    broker.stop()


def test_over_tls_with_a_password_and_nothing_marked_sent_when_refused(
    secure_broker, two_stations, mqtt_on, api_client, tmp_path
):
    subscriber = Subscriber(secure_broker.port, mqtt_on, broker=secure_broker)
    tls = {
        "LINESIGHT_MQTT_TLS_CA_FILE": str(secure_broker.ca_file),
        "LINESIGHT_MQTT_USERNAME": secure_broker.username,
    }
    refused = SenderProcess(
        secure_broker.port, mqtt_on, tmp_path, {**tls, "LINESIGHT_MQTT_PASSWORD": "wrong"}
    )
    accepted = SenderProcess(
        secure_broker.port, mqtt_on, tmp_path, {**tls, "LINESIGHT_MQTT_PASSWORD": "plant-secret"}
    )
    try:
        refused.start()
        answers = post_burst(api_client, {"ST1": two_stations["ST1"]}, 1)
        deadline = time.monotonic() + 60
        while "MQTT broker unavailable" not in refused.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "connection refused" in refused.log(), refused.log()
        refused.stop()
        assert OutboxMessage.objects.filter(mqtt_sent_at__isnull=True).exists()

        accepted.start()
        seen = subscriber.wait_for(lambda ms: any(m.topic.endswith("/inspections") for m in ms), 30)
    finally:
        refused.stop()
        accepted.stop()
        subscriber.close()
    frames = [m.body["data"]["id"] for m in seen if m.topic.endswith("/inspections")]
    assert frames == [answers["ST1"][0]["id"]]
