"""Sending deliveries on the task queue "webhooks": in order per chain, retried, paused.

A chain is the pending deliveries of one (subscription, scope): one
station's events, or the events of no station. The task
``deliver_webhooks(subscription_id, scope)`` claims the chain's oldest
pending deliveries (a batch, leased by a conditional UPDATE of the oldest,
so one task at a time sends a chain), posts them one after the other over
one kept-alive connection and records the batch in one transaction; a later
event of a station never overtakes an earlier one. A delivery that may
succeed later (5xx, 408, 425, 429, timeout, no connection) is retried with
exponential backoff and jitter, holding its chain back; any other answer
fails it for good and the chain moves on. After
``WEBHOOKS_PAUSE_AFTER_FAILURES`` failed attempts in a row the subscription
is paused with the reason, until a person resumes it.
"""

import logging
import random
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django_tasks import task

from integrations.models import DeliveryState, WebhookDelivery, WebhookSubscription
from integrations.webhooks.addresses import AddressRefused, Target, check_url
from integrations.webhooks.sender import Answer, connection_pool, post
from integrations.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    envelope_body,
    signature,
)

logger = logging.getLogger(__name__)

QUEUE = "webhooks"
USER_AGENT = "LineSight-Webhooks/1"
# A task sends at most this many deliveries (or for this long), then hands the rest
# of its chain to a fresh task, so one busy chain does not hold the worker.
CHAIN_BUDGET_DELIVERIES = 200
CHAIN_BUDGET_SECONDS = 10.0
# Deliveries claimed, sent and recorded together (one commit per batch).
BATCH_SIZE = 20
# The lease of a claimed batch outlasts its attempts by this much.
LEASE_MARGIN_SECONDS = 30


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: exponential, capped, +-20 %."""
    delay = settings.WEBHOOKS_RETRY_FIRST_SECONDS * settings.WEBHOOKS_RETRY_FACTOR ** (attempts - 1)
    return min(delay, settings.WEBHOOKS_RETRY_MAX_SECONDS) * random.uniform(0.8, 1.2)  # noqa: S311


def enqueue_chain(subscription_id: int, scope: str, *, run_after: datetime | None = None) -> None:
    """Hand a chain to the task engine (a task row, in the caller's transaction)."""
    runner = deliver_webhooks if run_after is None else deliver_webhooks.using(run_after=run_after)
    runner.enqueue(subscription_id, scope)


@task(queue_name=QUEUE)
def deliver_webhooks(subscription_id: int, scope: str) -> str:
    """The task: send the chain's due deliveries in order; returns what it did, for the log."""
    return deliver_chain(subscription_id, scope)


def deliver_chain(subscription_id: int, scope: str) -> str:
    subscription = WebhookSubscription.objects.filter(pk=subscription_id).first()
    if subscription is None or not subscription.sending:
        return "subscription gone, off or paused"
    batch, why = claim_next(subscription_id, scope)
    started, sent = time.monotonic(), 0
    while batch:
        if sent >= CHAIN_BUDGET_DELIVERIES or time.monotonic() - started > CHAIN_BUDGET_SECONDS:
            # Hand the rest to a fresh task, behind the other chains' tasks.
            with transaction.atomic():
                _release(batch)
                enqueue_chain(subscription_id, scope)
            return f"sent {sent}; the rest goes on in a new task"
        answers = send_batch(subscription, batch)
        sent += len(answers)
        batch, why = settle(subscription, batch, answers)
    return f"sent {sent}; {why}"


def _chain(subscription_id: int, scope: str) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(
        subscription_id=subscription_id, scope=scope, state=DeliveryState.PENDING
    ).order_by("id")


def _release(deliveries: list[WebhookDelivery]) -> None:
    WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(claimed_until=None)


def claim_next(subscription_id: int, scope: str) -> tuple[list[WebhookDelivery], str]:
    """The chain's oldest pending deliveries that are due, claimed; else [] and why not.

    Whoever leases the oldest leases the batch: a second task finds the oldest
    taken and leaves the chain alone.
    """
    now = timezone.now()
    batch = []
    for delivery in _chain(subscription_id, scope)[:BATCH_SIZE]:
        if delivery.next_attempt_at > now:
            break
        batch.append(delivery)
    if not batch:
        return [], "chain empty or waiting for its next try"
    lease = now + timedelta(
        seconds=settings.WEBHOOKS_TIMEOUT_SECONDS * len(batch) + LEASE_MARGIN_SECONDS
    )
    with transaction.atomic():
        oldest = WebhookDelivery.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
            pk=batch[0].pk,
            state=DeliveryState.PENDING,
        ).update(claimed_until=lease)
        if not oldest:
            return [], "another task sends this chain"
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in batch[1:]]).update(claimed_until=lease)
    return batch, ""


def _headers(subscription: WebhookSubscription, delivery: WebhookDelivery, body: bytes) -> dict:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event_type,
        DELIVERY_HEADER: str(delivery.message_id),
        SIGNATURE_HEADER: signature(subscription.secret, body, int(time.time())),
    }


def _refused(refused: AddressRefused) -> Answer:
    return Answer(
        ok=False, retryable=refused.retryable, status=None, elapsed_ms=0.0, error=str(refused)
    )


def send_once(
    subscription: WebhookSubscription,
    delivery: WebhookDelivery,
    *,
    target: Target | None = None,
    pool=None,
) -> Answer:
    """Sign and POST the delivery's envelope to the subscription's URL (checked now, unless
    the caller just checked it as ``target``)."""
    if target is None:
        try:
            target = check_url(subscription.url)
        except AddressRefused as refused:
            return _refused(refused)
    body = envelope_body(delivery.payload)
    return post(
        target,
        body,
        _headers(subscription, delivery, body),
        timeout=settings.WEBHOOKS_TIMEOUT_SECONDS,
        max_bytes=settings.WEBHOOKS_MAX_RESPONSE_BYTES,
        pool=pool,
    )


def send_batch(subscription: WebhookSubscription, batch: list[WebhookDelivery]) -> list[Answer]:
    """POST the batch in order over one connection, stopping at the first that fails.

    The URL is resolved and checked once per batch, and the connection goes
    to the address that was checked.
    """
    try:
        target = check_url(subscription.url)
    except AddressRefused as refused:
        return [_refused(refused)]
    answers = []
    pool = connection_pool(target, settings.WEBHOOKS_TIMEOUT_SECONDS)
    try:
        for delivery in batch:
            answers.append(send_once(subscription, delivery, target=target, pool=pool))
            if not answers[-1].ok:
                break
    finally:
        pool.close()
    return answers


def settle(
    subscription: WebhookSubscription, batch: list[WebhookDelivery], answers: list[Answer]
) -> tuple[list[WebhookDelivery], str]:
    """Record a sent batch in one transaction, schedule the retry or pause as needed.

    Returns the chain's next batch, claimed in the same transaction, or [] and
    why the chain stops here.
    """
    last = answers[-1]
    with transaction.atomic():
        # Locked first, as the fan-out does: a batch it adds to this chain is either
        # committed before the claim below sees it, or sees this chain empty.
        current = WebhookSubscription.objects.select_for_update().filter(pk=subscription.pk).first()
        record_answers(batch, answers, retry=True)
        _release(batch[len(answers) :])
        if last.ok:
            WebhookSubscription.objects.filter(
                pk=subscription.pk, consecutive_failures__gt=0
            ).update(consecutive_failures=0)
        elif _count_failure(subscription, last):
            return [], "paused"
        elif last.retryable:
            retry_at = batch[len(answers) - 1].next_attempt_at
            enqueue_chain(subscription.pk, batch[0].scope, run_after=retry_at)
            return [], "retry scheduled"
        if current is None or not current.sending:
            return [], "subscription gone, off or paused"
        return claim_next(subscription.pk, batch[0].scope)


RECORDED_FIELDS = [
    "attempts",
    "last_status",
    "last_response_ms",
    "last_error",
    "last_response",
    "claimed_until",
    "state",
    "delivered_at",
    "next_attempt_at",
]


def apply_answer(delivery: WebhookDelivery, answer: Answer, *, retry: bool) -> None:
    """Set the attempt's outcome on ``delivery`` (in memory; ``record_answers`` saves it)."""
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_status = answer.status
    delivery.last_response_ms = round(answer.elapsed_ms, 1)
    delivery.last_error = answer.error[:500]
    delivery.last_response = answer.excerpt[:1000]
    delivery.claimed_until = None
    if answer.ok:
        delivery.state, delivery.delivered_at = DeliveryState.DELIVERED, now
    elif answer.retryable and retry:
        delivery.next_attempt_at = now + timedelta(seconds=retry_delay(delivery.attempts))
    else:
        delivery.state = DeliveryState.FAILED


def record_answers(
    deliveries: list[WebhookDelivery], answers: list[Answer], *, retry: bool
) -> None:
    """Save the outcome of each (claimed) delivery's attempt: one UPDATE for the lot."""
    for delivery, answer in zip(deliveries, answers, strict=False):
        apply_answer(delivery, answer, retry=retry)
    WebhookDelivery.objects.bulk_update(deliveries[: len(answers)], RECORDED_FIELDS)


def _count_failure(subscription: WebhookSubscription, answer: Answer) -> bool:
    """Count a failed attempt; pause the subscription at the limit. True when it paused."""
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    limit = settings.WEBHOOKS_PAUSE_AFTER_FAILURES
    what = answer.error or "no answer"
    reason = f"Paused after {limit} failed deliveries in a row: {what} (from {subscription.url})"
    paused = WebhookSubscription.objects.filter(
        pk=subscription.pk, paused_at__isnull=True, consecutive_failures__gte=limit
    ).update(paused_at=timezone.now(), paused_reason=reason[:500])
    if paused:
        logger.warning("Webhook %s paused: %s", subscription.name, reason)
    return bool(paused)
