"""From the outbox to deliveries: which subscription wants which event.

``fan_out`` reads the outbox messages no fan-out has handled yet
(``webhooks_sent_at`` null) in ``id`` order, creates one delivery per
matching subscription, marks the messages and enqueues a task for each chain
that had nothing pending — all in one transaction, so a crash in between
redoes the batch and the unique (subscription, message) pair keeps it from
doubling.
``housekeeping`` re-queues chains whose task was lost, gives up deliveries pending too
long and prunes old logs.
"""

import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from common.models import OutboxMessage
from common.outbox import INSPECTION_JUDGED
from integrations.models import (
    INSPECTION_FAILED,
    DeliveryState,
    WebhookDelivery,
    WebhookSubscription,
)
from integrations.webhooks.delivery import QUEUE, enqueue_chain

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# Only one fan-out works at a time (PostgreSQL advisory lock; SQLite has one writer).
ADVISORY_LOCK_KEY = 0x4C5357484B  # "LSWHK"
# A pending, due, unclaimed delivery this old has lost its task: queue its chain again.
STALLED_AFTER_SECONDS = 60
# Finished task rows of the "webhooks" queue are deleted after this long.
TASK_ROWS_KEPT = timedelta(hours=1)
PRUNE_CHUNK = 5000


def wants(subscription: WebhookSubscription, message: OutboxMessage) -> bool:
    """Whether ``subscription`` asked for this event (its types and its plant/line filter)."""
    envelope = message.payload
    if subscription.plant_id and envelope.get("plant") != subscription.plant.code:
        return False
    if subscription.line_id and envelope.get("line") != subscription.line.code:
        return False
    if message.type in subscription.events:
        return True
    verdict = (envelope.get("data") or {}).get("verdict")
    return (
        message.type == INSPECTION_JUDGED
        and INSPECTION_FAILED in subscription.events
        and verdict == "fail"
    )


def _one_fan_out_at_a_time() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def fan_out(*, batch_size: int = BATCH_SIZE) -> int:
    """Handle one batch of the outbox; returns how many messages it handled.

    A chain gets a task only when it had nothing pending: otherwise a task
    already owns it (queued, running or waiting to retry) and will find the
    new deliveries. The subscriptions' rows are locked so that a task ending
    its chain (``delivery.settle``) and this batch never miss each other.
    """
    with transaction.atomic():
        if not _one_fan_out_at_a_time():
            return 0
        now = timezone.now()
        pending = OutboxMessage.objects.filter(webhooks_sent_at__isnull=True)
        if not WebhookSubscription.objects.filter(active=True).exists():
            return pending.update(webhooks_sent_at=now)  # nobody listens: mark, read none
        messages = list(pending.order_by("id")[:batch_size])
        if not messages:
            return 0
        subscriptions = list(
            WebhookSubscription.objects.filter(active=True)
            .select_related("plant", "line")
            .select_for_update(of=("self",))
            .order_by("id")
        )
        deliveries = [
            _delivery(subscription, message, now)
            for message in messages
            for subscription in subscriptions
            if wants(subscription, message)
        ]
        chains = {(d.subscription.pk, d.scope) for d in deliveries if d.subscription.sending}
        owned = _chains_with_pending(chains)
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        pending.filter(pk__in=[message.pk for message in messages]).update(webhooks_sent_at=now)
        for subscription_id, scope in sorted(chains - owned):
            enqueue_chain(subscription_id, scope)
    return len(messages)


def _delivery(subscription: WebhookSubscription, message: OutboxMessage, now) -> WebhookDelivery:
    return WebhookDelivery(
        subscription=subscription,
        message_id=message.message_id,
        event_type=message.type,
        scope=message.scope,
        payload=message.payload,
        next_attempt_at=now,
    )


def _chains_with_pending(chains: set[tuple[int, str]]) -> set[tuple[int, str]]:
    if not chains:
        return set()
    found = (
        WebhookDelivery.objects.filter(
            state=DeliveryState.PENDING,
            subscription_id__in={subscription_id for subscription_id, _ in chains},
            scope__in={scope for _, scope in chains},
        )
        .order_by()
        .values_list("subscription_id", "scope")
        .distinct()
    )
    return set(found) & chains


def requeue_stalled(*, older_than: float = STALLED_AFTER_SECONDS) -> int:
    """Queue again the chains whose due delivery nobody picked up (a lost task, a crash)."""
    now = timezone.now()
    stalled = (
        WebhookDelivery.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
            state=DeliveryState.PENDING,
            next_attempt_at__lt=now - timedelta(seconds=older_than),
            subscription__active=True,
            subscription__paused_at__isnull=True,
        )
        .order_by()
        .values_list("subscription_id", "scope")
        .distinct()
    )
    chains = list(stalled)
    with transaction.atomic():
        for subscription_id, scope in chains:
            enqueue_chain(subscription_id, scope)
    return len(chains)


def _delete_in_chunks(queryset) -> int:
    deleted = 0
    while ids := list(queryset.order_by().values_list("pk", flat=True)[:PRUNE_CHUNK]):
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]
    return deleted


EXPIRED = "Expired: still pending after {hours:g} h (webhook paused or receiver down)."


def expire_pending() -> int:
    """Give up deliveries pending longer than ``WEBHOOKS_PENDING_MAX_HOURS``; count them on
    their webhook. A delivery a task is sending now is left to that task.

    Without a limit a webhook paused for a week would keep one row per frame of the
    plant's week. The oldest go first, so a chain's order holds for what is left.
    """
    hours = settings.WEBHOOKS_PENDING_MAX_HOURS
    if hours <= 0:
        return 0
    now = timezone.now()
    stale = WebhookDelivery.objects.filter(
        state=DeliveryState.PENDING, created_at__lt=now - timedelta(hours=hours)
    ).exclude(claimed_until__gt=now)
    expired = 0
    while ids := list(stale.order_by("id").values_list("pk", flat=True)[:PRUNE_CHUNK]):
        with transaction.atomic():
            batch = WebhookDelivery.objects.filter(pk__in=ids, state=DeliveryState.PENDING)
            per_subscription = Counter(batch.values_list("subscription_id", flat=True))
            batch.update(state=DeliveryState.FAILED, last_error=EXPIRED.format(hours=hours))
            for subscription_id, count in per_subscription.items():
                WebhookSubscription.objects.filter(pk=subscription_id).update(
                    expired_deliveries=F("expired_deliveries") + count
                )
                logger.warning(
                    "Webhook %s: %d deliveries pending over %g h given up",
                    subscription_id,
                    count,
                    hours,
                )
        expired += sum(per_subscription.values())
    return expired


def prune() -> int:
    """Delete finished deliveries older than the log's retention, and old task rows."""
    now = timezone.now()
    kept = timedelta(hours=settings.WEBHOOKS_LOG_RETENTION_HOURS)
    deleted = _delete_in_chunks(
        WebhookDelivery.objects.filter(
            state__in=[DeliveryState.DELIVERED, DeliveryState.FAILED], created_at__lt=now - kept
        )
    )
    return deleted + _delete_in_chunks(
        DBTaskResult.objects.filter(
            queue_name=QUEUE,
            status=TaskResultStatus.SUCCESSFUL,
            finished_at__lt=now - TASK_ROWS_KEPT,
        )
    )


def housekeeping() -> None:
    requeue_stalled()
    expire_pending()
    prune()
