"""The fan-out loop (``manage.py webhooks_dispatch``, one process next to the task workers).

A dedicated process rather than a periodic job: the outbox is looked at every
``WEBHOOKS_POLL_SECONDS`` (0.2 s) when it is idle and at once while it has a
backlog, without a job row per look. Like ``manage.py worker`` it waits out a
database restart instead of exiting.
"""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from integrations.webhooks.fanout import BATCH_SIZE, fan_out, housekeeping

logger = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_SECONDS = 30.0
LONGEST_WAIT_SECONDS = 30.0


def run(*, stopping: Callable[[], bool]) -> None:
    """Fan out until ``stopping()`` says so."""
    next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL_SECONDS
    wait = settings.WEBHOOKS_POLL_SECONDS
    while not stopping():
        try:
            handled = fan_out()
            if time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL_SECONDS
                housekeeping()
            wait = settings.WEBHOOKS_POLL_SECONDS
        except (OperationalError, InterfaceError) as error:
            logger.warning("Database unavailable (%s); the fan-out resumes in %.1f s", error, wait)
            connections.close_all()
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT_SECONDS)
            continue
        if handled < BATCH_SIZE:
            close_old_connections()
            time.sleep(settings.WEBHOOKS_POLL_SECONDS)
