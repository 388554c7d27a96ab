"""The outbox: events for the plant's systems, stored in the transaction that writes the row.

A judged frame, an inspector's decision, a deployment switch and a finished
job each add one message here, inside the transaction that records them, so
an event exists exactly when its row does. Senders (MQTT, the webhook
fan-out) read the outbox in ``id`` order and mark what they handed on; a
frame's answer never waits for them, and a broker or receiver that is away
only delays delivery.

Every message is the same versioned envelope (``SCHEMA``)::

    {
      "schema": "linesight.event/1",
      "id": "6f1c...",                 # stable across redeliveries: deduplicate on it
      "type": "inspection.judged",     # one of EVENT_TYPES
      "occurred_at": "2026-12-01T16:37:19.123456+00:00",
      "plant": "P1", "line": "L1", "station": "S1",   # null for a job
      "data": {...}                    # the event's own fields (README, Integration)
    }

Delivery is at least once: a consumer may see a message twice after a
crash or an outage, never zero times, and never a message whose row was
rolled back.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from common.models import OutboxMessage

SCHEMA = "linesight.event/1"

INSPECTION_JUDGED = "inspection.judged"
INSPECTION_VERIFIED = "inspection.verified"
DEPLOYMENT_CHANGED = "deployment.changed"
JOB_FINISHED = "job.finished"
EVENT_TYPES = (INSPECTION_JUDGED, INSPECTION_VERIFIED, DEPLOYMENT_CHANGED, JOB_FINISHED)

# PostgreSQL: outbox_add NOTIFYs this channel in its transaction (delivered at
# commit, dropped on rollback), so the MQTT sender waits on LISTEN, not a poll.
OUTBOX_CHANNEL = "linesight_outbox"


def mqtt_configured() -> bool:
    return bool(getattr(settings, "MQTT_HOST", ""))


def outbox_add(event_type: str, *, scope: tuple[str, str, str] | None, data: dict) -> OutboxMessage:
    """Add one event; call it inside the transaction that writes what the event reports.

    ``scope`` is the (plant, line, station) codes of the event's station, or
    None for an event of no station. Without a broker configured the message
    is marked sent for MQTT at once, so no backlog waits for a broker that
    was never there.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown outbox event type {event_type!r}")
    now = timezone.now()
    message_id = uuid.uuid4()
    plant, line, station = scope if scope is not None else (None, None, None)
    envelope = {
        "schema": SCHEMA,
        "id": str(message_id),
        "type": event_type,
        "occurred_at": now.isoformat(),
        "plant": plant,
        "line": line,
        "station": station,
        "data": data,
    }
    message = OutboxMessage.objects.create(
        message_id=message_id,
        type=event_type,
        scope="/".join(scope) if scope is not None else "",
        payload=envelope,
        created_at=now,
        mqtt_sent_at=None if mqtt_configured() else now,
    )
    if connection.vendor == "postgresql" and mqtt_configured():
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {OUTBOX_CHANNEL}")
    return message


def outbox_prune(
    *, older_than: timedelta | None = None, batch: int = 1000, max_batches: int = 10
) -> int:
    """Delete messages both consumers handed on, older than ``older_than`` (default
    ``OUTBOX_RETENTION_HOURS``), a batch at a time. ``run_workers`` calls it with its
    sweep whether or not MQTT is configured; the MQTT sender too."""
    if older_than is None:
        older_than = timedelta(hours=settings.OUTBOX_RETENTION_HOURS)
    cutoff = timezone.now() - older_than
    deleted = 0
    for _ in range(max_batches):
        done = OutboxMessage.objects.filter(
            mqtt_sent_at__isnull=False, webhooks_sent_at__isnull=False, created_at__lt=cutoff
        ).order_by("id")
        ids = list(done.values_list("id", flat=True)[:batch])
        if not ids:
            break
        deleted += OutboxMessage.objects.filter(id__in=ids).delete()[0]
        if len(ids) < batch:
            break
    return deleted
