"""Webhook deliveries against a real receiver on loopback: signed, retried, in order, paused.

Events are written with ``common.outbox.outbox_add`` (what frames, decisions,
deployments and jobs call); the fan-out and the "webhooks" queue's tasks run
through the task engine's own worker code (``run_webhooks``).
"""

import json
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from common.outbox import DEPLOYMENT_CHANGED, INSPECTION_JUDGED, outbox_add
from integrations.models import DeliveryState, WebhookDelivery, WebhookSubscription
from integrations.webhooks.delivery import QUEUE
from integrations.webhooks.fanout import expire_pending, fan_out, prune, requeue_stalled
from integrations.webhooks.services import subscription_create, subscription_resume
from tests import factories
from tests.integrations.receiver import Received, Receiver, Reply, verify_signature

S1 = ("P1", "L1", "S1")
S2 = ("P1", "L1", "S2")


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def fast_webhooks(settings):
    """Loopback receivers allowed (the tests' plant network), retries in tenths of a second."""
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.WEBHOOKS_RETRY_FIRST_SECONDS = 0.1
    settings.WEBHOOKS_RETRY_FACTOR = 2.0
    settings.WEBHOOKS_RETRY_MAX_SECONDS = 0.3
    settings.WEBHOOKS_TIMEOUT_SECONDS = 2.0
    settings.WEBHOOKS_PAUSE_AFTER_FAILURES = 10
    return settings


def subscribe(url: str, events=(INSPECTION_JUDGED,), **fields) -> WebhookSubscription:
    return subscription_create(
        name=factories.unique("hook"), url=url, events=list(events), **fields
    )


def frame_event(number: int, *, scope=S1, verdict: str = "pass"):
    return outbox_add(
        INSPECTION_JUDGED,
        scope=scope,
        data={"id": number, "verdict": verdict, "serial": f"SN-{number}", "lot": "LOT-1"},
    )


def _worker() -> Worker:
    return Worker(
        queue_names=[QUEUE],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    )


def _run_due_tasks(worker: Worker) -> int:
    ran = 0
    while (task := DBTaskResult.objects.ready().filter(queue_name=QUEUE).first()) is not None:
        task.claim(worker.worker_id)
        worker.run_task(task)
        ran += 1
    failed = DBTaskResult.objects.filter(queue_name=QUEUE, status=TaskResultStatus.FAILED)
    assert not failed.exists(), failed.first().traceback
    return ran


def run_webhooks(until: Callable[[], bool], *, timeout: float = 15.0) -> None:
    """Fan out and run the due tasks of the "webhooks" queue until ``until()`` holds."""
    worker = _worker()
    deadline = time.monotonic() + timeout
    while True:
        fan_out()
        ran = _run_due_tasks(worker)
        if until():
            return
        assert time.monotonic() < deadline, "the receiver did not get what the test waits for"
        if not ran:
            time.sleep(0.02)


def serials(requests) -> list[str]:
    return [r.envelope["data"]["serial"] for r in requests]


def test_a_delivery_is_the_envelope_signed_and_the_documented_code_verifies_it(
    db, fast_webhooks, receiver
):
    hook = subscribe(receiver.url)
    message = frame_event(1)

    run_webhooks(lambda: len(receiver.accepted()) == 1)

    got = receiver.accepted()[0]
    assert got.envelope == message.payload
    assert got.envelope["schema"] == "linesight.event/1"
    assert got.headers["X-LineSight-Event"] == "inspection.judged"
    assert got.headers["X-LineSight-Delivery"] == str(message.message_id)
    assert got.headers["Content-Type"] == "application/json"
    header = got.headers["X-LineSight-Signature"]
    assert verify_signature(hook.secret, got.body, header)
    assert not verify_signature("whsec_wrong", got.body, header)
    assert not verify_signature(hook.secret, got.body.replace(b"pass", b"fail"), header)
    # Replayed later: the timestamp is signed too, so the receiver refuses it as old.
    old = int(header.split(",")[0][2:]) - 3600
    replayed = header.replace(header.split(",")[0], f"t={old}")
    assert not verify_signature(hook.secret, got.body, replayed)
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.DELIVERED
    assert (delivery.attempts, delivery.last_status) == (1, 200)
    assert delivery.last_response_ms is not None


def test_each_subscription_gets_the_events_it_asked_for(db, fast_webhooks, receiver):
    fails = subscribe(receiver.url + "?who=fails", events=["inspection.failed"])
    frames = subscribe(receiver.url + "?who=frames", events=["inspection.judged"])
    both = subscribe(receiver.url + "?who=both", events=["inspection.judged", "inspection.failed"])
    deployments = subscribe(receiver.url + "?who=deploy", events=["deployment.changed"])
    other_line = factories.line(code="L9")
    elsewhere = subscribe(receiver.url + "?who=l9", events=["inspection.judged"], line=other_line)
    frame_event(1, verdict="pass")
    frame_event(2, verdict="fail")
    outbox_add(DEPLOYMENT_CHANGED, scope=S1, data={"action": "activate"})

    run_webhooks(lambda: len(receiver.accepted()) == 6)
    time.sleep(0.2)

    def types(hook):
        return [
            (d.event_type, (d.payload["data"] or {}).get("verdict"))
            for d in hook.deliveries.order_by("id")
        ]

    assert types(fails) == [("inspection.judged", "fail")]
    assert types(frames) == [("inspection.judged", "pass"), ("inspection.judged", "fail")]
    assert types(both) == types(frames)  # one delivery per event, not one per matching choice
    assert types(deployments) == [("deployment.changed", None)]
    assert types(elsewhere) == []
    assert len(receiver.requests) == 6


def test_retries_after_500s_then_delivered_with_backoff(db, fast_webhooks, receiver):
    answers = iter([500, 503, 200])
    receiver.reply = lambda received: Reply(status=next(answers))
    hook = subscribe(receiver.url)
    frame_event(1)

    run_webhooks(lambda: len(receiver.accepted()) == 1)

    assert [r.status for r in receiver.requests] == [500, 503, 200]
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.1 * 0.8 and gaps[1] >= 0.2 * 0.8  # 0.1 s, then 0.2 s (+-20 %)
    # Every attempt carries the same delivery id, for the receiver to deduplicate.
    assert len({r.headers["X-LineSight-Delivery"] for r in receiver.requests}) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 3, 200)
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0 and hook.paused_at is None


def test_a_station_waits_for_its_earlier_failing_delivery_while_others_go_on(
    db, fast_webhooks, receiver
):
    failures = {"SN-1": 3}

    def reply(received: Received) -> Reply:
        serial = received.envelope["data"]["serial"]
        if failures.get(serial, 0) > 0:
            failures[serial] -= 1
            return Reply(status=502)
        return Reply()

    receiver.reply = reply
    subscribe(receiver.url)
    frame_event(1, scope=S1)
    frame_event(2, scope=S1)
    frame_event(3, scope=S2)
    frame_event(4, scope=S1)

    run_webhooks(lambda: len(receiver.accepted()) == 4)

    on_s1 = [r for r in receiver.requests if r.envelope["station"] == "S1"]
    assert serials(on_s1) == ["SN-1", "SN-1", "SN-1", "SN-1", "SN-2", "SN-4"]
    first_s1_success = next(r for r in on_s1 if r.status == 200)
    s2 = next(r for r in receiver.requests if r.envelope["station"] == "S2")
    assert s2.at < first_s1_success.at  # S2 was not held back by S1's failing delivery


def test_a_refused_event_fails_for_good_and_its_station_moves_on(db, fast_webhooks, receiver):
    receiver.reply = lambda received: Reply(
        status=422 if received.envelope["data"]["serial"] == "SN-1" else 200, body=b"bad lot"
    )
    subscribe(receiver.url)
    frame_event(1)
    frame_event(2)

    run_webhooks(lambda: len(receiver.accepted()) == 1)

    assert [r.status for r in receiver.requests] == [422, 200]
    refused = WebhookDelivery.objects.get(payload__data__serial="SN-1")
    assert (refused.state, refused.attempts, refused.last_status) == ("failed", 1, 422)
    assert refused.last_response == "bad lot"


def test_paused_after_the_limit_with_the_reason_and_resumed_in_order(
    db, fast_webhooks, receiver, api_client, client
):
    fast_webhooks.WEBHOOKS_PAUSE_AFTER_FAILURES = 3
    receiver.reply = lambda received: Reply(status=500)
    hook = subscribe(receiver.url)
    frame_event(1)

    run_webhooks(lambda: WebhookSubscription.objects.get(pk=hook.pk).paused_at is not None)
    frame_event(2)
    run_webhooks(lambda: WebhookDelivery.objects.count() == 2)
    time.sleep(0.5)  # longer than any backoff: a paused webhook is not tried
    run_webhooks(lambda: True)

    assert len(receiver.requests) == 3
    hook.refresh_from_db()
    assert hook.paused_reason.startswith("Paused after 3 failed deliveries in a row: 500")
    assert receiver.url in hook.paused_reason
    engineer = factories.engineer()
    api_client.force_authenticate(engineer)
    shown = api_client.get(f"/api/v1/webhooks/{hook.pk}/").json()
    assert (shown["status"], shown["pending"]) == ("paused", 2)
    assert shown["paused_reason"] == hook.paused_reason
    client.force_login(engineer)
    page = client.get("/admin/integrations/webhooksubscription/").content.decode()
    assert "Paused after 3 failed deliveries in a row: 500" in page

    receiver.reply = lambda received: Reply()
    resumed = api_client.post(f"/api/v1/webhooks/{hook.pk}/resume/").json()
    assert (resumed["status"], resumed["requeued"]) == ("sending", 2)
    run_webhooks(lambda: len(receiver.accepted()) == 2)
    assert serials(receiver.accepted()) == ["SN-1", "SN-2"]
    hook.refresh_from_db()
    assert (hook.paused_at, hook.paused_reason, hook.consecutive_failures) == (None, "", 0)


def test_a_timeout_is_retried(db, fast_webhooks, receiver):
    fast_webhooks.WEBHOOKS_TIMEOUT_SECONDS = 0.3
    answers = iter([Reply(delay=2.0), Reply()])
    receiver.reply = lambda received: next(answers)
    subscribe(receiver.url)
    frame_event(1)

    started = time.monotonic()
    run_webhooks(lambda: WebhookDelivery.objects.get().attempts == 1)
    assert time.monotonic() - started < 1.5
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "pending"
    assert delivery.last_error == "No answer within 0.3 s (timeout)."

    run_webhooks(lambda: WebhookDelivery.objects.get().state == "delivered")


def test_an_endless_answer_is_read_up_to_the_cap(db, fast_webhooks, receiver):
    fast_webhooks.WEBHOOKS_MAX_RESPONSE_BYTES = 64 * 1024
    fast_webhooks.WEBHOOKS_TIMEOUT_SECONDS = 20.0
    receiver.reply = lambda received: Reply(endless=True)
    subscribe(receiver.url)
    frame_event(1)

    started = time.monotonic()
    run_webhooks(lambda: WebhookDelivery.objects.get().state == "delivered")

    # The body never ends and keeps coming well within the timeout: only the cap ended it.
    assert time.monotonic() - started < 3
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_response == "x" * 1000


def test_a_redirect_is_not_followed(db, fast_webhooks, receiver):
    receiver.reply = lambda received: Reply(
        status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    subscribe(receiver.url)
    frame_event(1)

    run_webhooks(lambda: WebhookDelivery.objects.get().state == "failed")

    delivery = WebhookDelivery.objects.get()
    assert "redirects are not followed" in delivery.last_error
    assert len(receiver.requests) == 1


def test_a_private_address_is_refused_at_delivery_without_the_setting(db, fast_webhooks, receiver):
    hook = subscribe(receiver.url)  # allowed when it was saved
    fast_webhooks.WEBHOOKS_ALLOW_PRIVATE = False  # e.g. the name now resolves to loopback
    frame_event(1)

    run_webhooks(lambda: WebhookDelivery.objects.get().state == "failed")

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert "127.0.0.1" in delivery.last_error
    assert "LINESIGHT_WEBHOOKS_ALLOW_PRIVATE" in delivery.last_error
    hook.refresh_from_db()
    assert hook.consecutive_failures == 1


def test_nothing_is_delivered_to_a_webhook_switched_off(db, fast_webhooks, receiver):
    hook = subscribe(receiver.url, active=False)
    frame_event(1)
    assert fan_out() == 1
    assert not hook.deliveries.exists()
    assert subscription_resume(subscription=hook) == 0
    frame_event(2)
    run_webhooks(lambda: len(receiver.accepted()) == 1)
    assert serials(receiver.accepted()) == ["SN-2"]


def test_the_fan_out_marks_what_it_handled_and_never_doubles_a_delivery(
    db, fast_webhooks, receiver
):
    subscribe(receiver.url)
    first = frame_event(1)
    assert fan_out() == 1
    assert fan_out() == 0
    first.refresh_from_db()
    assert first.webhooks_sent_at is not None
    type(first).objects.filter(pk=first.pk).update(webhooks_sent_at=None)  # a crash before
    assert fan_out() == 1  # the mark: handled again, without a second delivery
    assert WebhookDelivery.objects.count() == 1
    body = json.loads(json.dumps(WebhookDelivery.objects.get().payload))
    assert body == first.payload


def test_a_chain_whose_task_was_lost_is_queued_again(db, fast_webhooks, receiver):
    subscribe(receiver.url)
    frame_event(1)
    fan_out()
    DBTaskResult.objects.all().delete()  # the worker's task row is gone (a crash, a wipe)
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))

    assert requeue_stalled() == 1

    run_webhooks(lambda: len(receiver.accepted()) == 1)
    assert requeue_stalled() == 0


def test_old_log_entries_and_task_rows_are_pruned_pending_ones_kept(db, fast_webhooks, receiver):
    subscribe(receiver.url)
    frame_event(1)
    frame_event(2)
    run_webhooks(lambda: len(receiver.accepted()) == 2)
    frame_event(3)
    fan_out()  # pending, never sent (no worker ran)
    old = timezone.now() - timedelta(hours=fast_webhooks.WEBHOOKS_LOG_RETENTION_HOURS + 1)
    WebhookDelivery.objects.update(created_at=old)
    DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).update(finished_at=old)

    prune()

    assert list(WebhookDelivery.objects.values_list("state", flat=True)) == ["pending"]
    assert not DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).exists()
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).exists()


def test_deliveries_pending_too_long_are_given_up_counted_and_the_rest_resume_in_order(
    db, api_client, fast_webhooks, receiver
):
    fast_webhooks.WEBHOOKS_PENDING_MAX_HOURS = 24
    hook = subscribe(receiver.url)
    WebhookSubscription.objects.filter(pk=hook.pk).update(
        paused_at=timezone.now(), paused_reason="Paused after 10 failed deliveries in a row"
    )
    for number in (1, 2, 3):
        frame_event(number)
    fan_out()
    first, second, third = WebhookDelivery.objects.order_by("id")
    WebhookDelivery.objects.filter(pk__in=[first.pk, second.pk]).update(
        created_at=timezone.now() - timedelta(hours=25)
    )

    assert expire_pending() == 2
    assert expire_pending() == 0

    states = dict(WebhookDelivery.objects.values_list("pk", "state"))
    assert states == {first.pk: "failed", second.pk: "failed", third.pk: "pending"}
    first.refresh_from_db()
    assert first.last_error.startswith("Expired: still pending after 24 h")
    engineer = factories.engineer()
    api_client.force_authenticate(engineer)
    shown = api_client.get(f"/api/v1/webhooks/{hook.pk}/").json()
    assert shown["expired_deliveries"] == 2
    assert shown["pending"] == 1

    subscription_resume(subscription=hook)
    run_webhooks(lambda: len(receiver.accepted()) == 1)
    assert serials(receiver.accepted()) == ["SN-3"]


def test_no_pending_age_limit_keeps_every_delivery(db, fast_webhooks, receiver):
    fast_webhooks.WEBHOOKS_PENDING_MAX_HOURS = 0
    subscribe(receiver.url)
    frame_event(1)
    fan_out()
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=400))

    assert expire_pending() == 0
    assert list(WebhookDelivery.objects.values_list("state", flat=True)) == ["pending"]


def test_admin_resumes_a_paused_webhook(db, client, fast_webhooks, receiver):
    hook = subscribe(receiver.url)
    frame_event(1)
    fan_out()
    WebhookSubscription.objects.filter(pk=hook.pk).update(
        paused_at=timezone.now(), paused_reason="Paused after 10 failed deliveries in a row: 500"
    )
    client.force_login(factories.engineer())

    response = client.post(
        "/admin/integrations/webhooksubscription/",
        {"action": "resume", "_selected_action": [hook.pk]},
        follow=True,
    )

    assert "resumed: 1 pending deliveries go out now." in response.content.decode()
    run_webhooks(lambda: len(receiver.accepted()) == 1)
    hook.refresh_from_db()
    assert hook.paused_at is None


def test_a_chain_with_a_task_gets_no_second_one(db, fast_webhooks, receiver):
    subscribe(receiver.url)
    frame_event(1)
    fan_out()
    frame_event(2, scope=S1)
    frame_event(3, scope=S2)
    fan_out()

    ready = DBTaskResult.objects.ready().filter(queue_name=QUEUE)
    assert sorted(task.args_kwargs["args"][1] for task in ready) == ["P1/L1/S1", "P1/L1/S2"]
    run_webhooks(lambda: len(receiver.accepted()) == 3)
    on_s1 = [r for r in receiver.accepted() if r.envelope["station"] == "S1"]
    assert serials(on_s1) == ["SN-1", "SN-2"]
