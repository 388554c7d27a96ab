"""The MQTT sender: the outbox published in ``id`` order, marked once the broker acknowledged.

At least once, in order per station: messages go out in ``id`` order on one
connection at QoS 1 and are marked ``mqtt_sent_at`` only after their PUBACK;
after a lost broker, a database restart or a killed process the sender
starts again from the first unmarked message, so a subscriber may see a
message twice (same ``id``), never lose one. One sender publishes at a time:
on PostgreSQL a second one stands by on an advisory lock.

Latency: on PostgreSQL the sender sleeps on LISTEN and ``outbox_add`` sends a
NOTIFY with the commit; on SQLite it polls every few milliseconds (an index
lookup on the pending rows).
"""

import logging
import threading
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections, transaction
from django.utils import timezone

from common.models import OutboxMessage
from common.outbox import outbox_prune
from integrations.mqtt.client import BrokerConfig, BrokerConnection, BrokerUnavailable
from integrations.mqtt.topics import publications_for
from integrations.mqtt.waiting import OutboxWaiter, outbox_waiter

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
ACK_TIMEOUT_SECONDS = 10.0
FIRST_WAIT_SECONDS = 0.2
LONGEST_WAIT_SECONDS = 5.0
PRUNE_EVERY_SECONDS = 60.0


def outbox_pending(limit: int) -> list[OutboxMessage]:
    """The oldest messages not yet published, in the order they must go out."""
    pending = OutboxMessage.objects.filter(mqtt_sent_at__isnull=True).order_by("id")
    return list(pending.only("id", "payload")[:limit])


def outbox_mark_sent(ids: list[int]) -> None:
    """Mark ``ids`` published. On PostgreSQL without waiting for the WAL flush: a mark lost
    in a database crash only means those messages go out again (at least once)."""
    if not ids:
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        OutboxMessage.objects.filter(id__in=ids).update(mqtt_sent_at=timezone.now())


class MqttSender:
    """Publish the outbox until ``stop`` is set; survives broker and database outages."""

    def __init__(
        self,
        *,
        config: BrokerConfig | None = None,
        prefix: str | None = None,
        batch_size: int = BATCH_SIZE,
        waiter: OutboxWaiter | None = None,
    ):
        self.config = config or BrokerConfig.from_settings()
        self.prefix = settings.MQTT_TOPIC_PREFIX if prefix is None else prefix
        self.batch_size = batch_size
        self.waiter = waiter or outbox_waiter()
        self.connection: BrokerConnection | None = None
        self.published = 0
        self._next_prune = 0.0

    def run(self, stop: threading.Event) -> None:
        wait = FIRST_WAIT_SECONDS
        while not stop.is_set():
            try:
                if not self.waiter.claim():
                    stop.wait(2.0)  # another sender publishes; stand by
                    continue
                self._connect()
                self._pump(stop)
                wait = FIRST_WAIT_SECONDS
            except BrokerUnavailable as exc:
                logger.warning("MQTT broker unavailable (%s); retrying in %.1f s", exc, wait)
                self._drop_connection()
                stop.wait(wait)
                wait = min(wait * 2, LONGEST_WAIT_SECONDS)
            except (OperationalError, InterfaceError) as exc:
                first_line = (str(exc).strip().splitlines() or [""])[0]
                logger.warning("Database unavailable (%s); retrying in %.1f s", first_line, wait)
                connections.close_all()
                self.waiter.close()
                stop.wait(wait)
                wait = min(wait * 2, LONGEST_WAIT_SECONDS)
        self._drop_connection()
        self.waiter.close()

    def _connect(self) -> None:
        if self.connection is not None and self.connection.connected:
            return
        self._drop_connection()
        connection = BrokerConnection(self.config)
        connection.open()
        self.connection = connection
        logger.info(
            "MQTT sender connected to %s:%s as %s",
            self.config.host,
            self.config.port,
            self.config.client_id(),
        )

    def _drop_connection(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()

    def _pump(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._prune_when_due()
            batch = outbox_pending(self.batch_size)
            if not batch:
                self.waiter.wait()
                continue
            self.send_batch(batch)

    def send_batch(self, batch: list[OutboxMessage]) -> None:
        """Publish ``batch``; mark the messages whose every publication was acknowledged."""
        publications, ends = [], []
        for message in batch:
            try:
                publications.extend(publications_for(message.payload, prefix=self.prefix))
            except (KeyError, TypeError, ValueError) as exc:
                # A malformed message must not hold up every message after it.
                logger.error("Outbox message #%s not publishable (%r); skipped", message.id, exc)
            ends.append(len(publications))
        try:
            self.connection.publish_all(publications, timeout=ACK_TIMEOUT_SECONDS)
        except BrokerUnavailable as exc:
            acknowledged = getattr(exc, "acknowledged", 0)
            done = [m.id for m, end in zip(batch, ends, strict=True) if end <= acknowledged]
            outbox_mark_sent(done)
            self.published += len(done)
            raise
        outbox_mark_sent([message.id for message in batch])
        self.published += len(batch)

    def _prune_when_due(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        deleted = outbox_prune()
        if deleted:
            logger.info("Outbox: %d delivered messages pruned", deleted)
