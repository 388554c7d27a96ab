"""How the sender waits for new outbox messages: LISTEN on PostgreSQL, a short poll on SQLite.

``common.outbox.outbox_add`` sends a NOTIFY on ``OUTBOX_CHANNEL`` inside the
transaction that adds a message, so PostgreSQL delivers it with the commit
(and never for a rollback). The LISTEN connection also holds the advisory
lock that makes one sender the active one.
"""

import contextlib
import time

from django.conf import settings
from django.db import OperationalError, connections

from common.outbox import OUTBOX_CHANNEL

SQLITE_POLL_SECONDS = 0.005
# A NOTIFY lost with a dropped connection costs at most this much delay.
POSTGRES_FALLBACK_POLL_SECONDS = 1.0
# "LSMQTT": one active MQTT sender per database.
SENDER_LOCK_KEY = 0x4C534D515454


class OutboxWaiter:
    """Polls: fit for SQLite, where a write and a read are a few microseconds apart."""

    def __init__(self, poll_seconds: float = SQLITE_POLL_SECONDS):
        self.poll_seconds = poll_seconds

    def claim(self) -> bool:
        """True when this process may publish (one sender per database)."""
        return True

    def wait(self) -> None:
        time.sleep(self.poll_seconds)

    def close(self) -> None:
        pass


class PostgresOutboxWaiter(OutboxWaiter):
    """Sleeps on LISTEN until a commit adds a message, or a fallback poll interval passes.

    With ``listen=False`` it only polls; its connection still holds the sender lock.
    """

    def __init__(
        self, *, listen: bool = True, poll_seconds: float = POSTGRES_FALLBACK_POLL_SECONDS
    ):
        super().__init__(poll_seconds)
        self.listen = listen
        self._listener = None
        self._holds_lock = False

    def _open(self):
        import psycopg

        params = connections["default"].get_connection_params()
        params.pop("cursor_factory", None)
        return psycopg.connect(**params, autocommit=True)

    def claim(self) -> bool:
        import psycopg

        try:
            if self._listener is None or self._listener.closed:
                self._holds_lock = False
                self._listener = self._open()
            if not self._holds_lock:
                row = self._listener.execute(
                    "SELECT pg_try_advisory_lock(%s)", [SENDER_LOCK_KEY]
                ).fetchone()
                self._holds_lock = bool(row[0])
                # LISTEN only once active: a standby must not let notifications pile up.
                if self._holds_lock and self.listen:
                    self._listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
        except psycopg.Error as exc:
            self.close()
            raise OperationalError(str(exc)) from exc
        return self._holds_lock

    def wait(self) -> None:
        import psycopg

        if self._listener is None or not self.listen:
            time.sleep(self.poll_seconds)
            return
        try:
            for _ in self._listener.notifies(timeout=self.poll_seconds, stop_after=1):
                break
        except psycopg.Error as exc:
            self.close()
            raise OperationalError(str(exc)) from exc

    def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            self._holds_lock = False
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                listener.close()


def outbox_waiter() -> OutboxWaiter:
    """LISTEN on PostgreSQL, a 5 ms poll on SQLite, unless MQTT_IDLE_POLL_MS asks for a poll."""
    poll_ms = settings.MQTT_IDLE_POLL_MS
    if connections["default"].vendor == "postgresql":
        if poll_ms > 0:
            return PostgresOutboxWaiter(listen=False, poll_seconds=poll_ms / 1000)
        return PostgresOutboxWaiter()
    return OutboxWaiter(poll_ms / 1000 if poll_ms > 0 else SQLITE_POLL_SECONDS)
