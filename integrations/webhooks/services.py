"""Writes on subscriptions, for admin and the API: create, change, resume, rotate, test."""

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from common.outbox import SCHEMA
from integrations.models import (
    WEBHOOK_TEST,
    DeliveryState,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    new_secret,
)
from integrations.webhooks.addresses import AddressRefused, check_url
from integrations.webhooks.delivery import enqueue_chain, record_answers, send_once
from masterdata.models import Line, Plant

EDITABLE_FIELDS = ("name", "url", "events", "plant", "line", "active")
TEST_SCOPE = "test"


def subscription_check(
    *,
    url: str,
    events: Any,
    plant: Plant | None = None,
    line: Line | None = None,
    check_address: bool = True,
) -> list[str]:
    """The rules of a subscription; ValidationError per field. Returns the events, in order.

    The URL's address is checked (resolved) when it is new or changed.
    """
    errors: dict[str, str] = {}
    try:
        if check_address:
            check_url(url)
    except AddressRefused as refused:
        errors["url"] = str(refused)
    if not isinstance(events, list | tuple) or not events:
        errors["events"] = f"Choose at least one event of: {', '.join(WebhookEvent.values)}."
    elif unknown := [event for event in events if event not in WebhookEvent.values]:
        errors["events"] = (
            f"Unknown event(s) {', '.join(map(str, unknown))}; "
            f"choose from {', '.join(WebhookEvent.values)}."
        )
    if plant is not None and line is not None and line.plant_id != plant.pk:
        errors["line"] = f"Line {line.code} is not in plant {plant.code}."
    if errors:
        raise ValidationError(errors)
    return [event for event in WebhookEvent.values if event in events]


def subscription_create(
    *,
    name: str,
    url: str,
    events: list[str],
    plant: Plant | None = None,
    line: Line | None = None,
    active: bool = True,
    created_by: Any = None,
) -> WebhookSubscription:
    """A new subscription with a fresh secret (``subscription.secret``: show it once)."""
    events = subscription_check(url=url, events=events, plant=plant, line=line)
    if WebhookSubscription.objects.filter(name=name).exists():
        raise ValidationError({"name": f"A webhook named '{name}' exists already."})
    user = created_by if created_by is not None and created_by.is_authenticated else None
    return WebhookSubscription.objects.create(
        name=name, url=url, events=events, plant=plant, line=line, active=active, created_by=user
    )


def subscription_update(
    *, subscription: WebhookSubscription, **changes: Any
) -> WebhookSubscription:
    """Change what the subscription receives; switched on again, it sends what is pending."""
    if unknown := set(changes) - set(EDITABLE_FIELDS):
        raise ValidationError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    # From the database: an admin form has already set the new values on ``subscription``.
    was_active = (
        WebhookSubscription.objects.filter(pk=subscription.pk)
        .values_list("active", flat=True)
        .first()
    )
    for field, value in changes.items():
        setattr(subscription, field, value)
    subscription.events = subscription_check(
        url=subscription.url,
        events=subscription.events,
        plant=subscription.plant,
        line=subscription.line,
        check_address="url" in changes,
    )
    name_taken = WebhookSubscription.objects.filter(name=subscription.name).exclude(
        pk=subscription.pk
    )
    if name_taken.exists():
        raise ValidationError({"name": f"A webhook named '{subscription.name}' exists already."})
    with transaction.atomic():
        subscription.save()
        if subscription.active and not was_active:
            _requeue_pending(subscription)
    return subscription


def _requeue_pending(subscription: WebhookSubscription) -> int:
    """Every pending delivery is due now; one task per chain. Returns how many are pending."""
    pending = WebhookDelivery.objects.filter(
        subscription=subscription, state=DeliveryState.PENDING
    ).exclude(scope=TEST_SCOPE)
    count = pending.update(next_attempt_at=timezone.now())
    for scope in pending.order_by().values_list("scope", flat=True).distinct():
        enqueue_chain(subscription.pk, scope)
    return count


def subscription_resume(*, subscription: WebhookSubscription) -> int:
    """Lift a pause (and switch it on): pending deliveries go out now, in order.

    Returns how many deliveries were pending.
    """
    with transaction.atomic():
        WebhookSubscription.objects.filter(pk=subscription.pk).update(
            paused_at=None, paused_reason="", consecutive_failures=0, active=True
        )
        subscription.refresh_from_db()
        return _requeue_pending(subscription)


def subscription_rotate_secret(*, subscription: WebhookSubscription) -> str:
    """A new signing secret, used from the next attempt on; returned to be shown once."""
    subscription.secret = new_secret()
    subscription.save(update_fields=["secret"])
    return subscription.secret


def subscription_send_test(*, subscription: WebhookSubscription) -> WebhookDelivery:
    """Post a signed ``webhook.test`` event now, once, whatever the pause; logged, not retried.

    Its outcome does not count towards pausing the subscription.
    """
    now = timezone.now()
    message_id = uuid.uuid4()
    envelope = {
        "schema": SCHEMA,
        "id": str(message_id),
        "type": WEBHOOK_TEST,
        "occurred_at": now.isoformat(),
        "plant": None,
        "line": None,
        "station": None,
        "data": {"webhook": subscription.name, "message": "A test event from LineSight."},
    }
    delivery = WebhookDelivery.objects.create(
        subscription=subscription,
        message_id=message_id,
        event_type=WEBHOOK_TEST,
        scope=TEST_SCOPE,
        payload=envelope,
        next_attempt_at=now,
    )
    record_answers([delivery], [send_once(subscription, delivery)], retry=False)
    return delivery
