"""A task worker that outlives database restarts: django-tasks-db's loop, resumed on outage.

``manage.py db_worker`` exits on the first ``OperationalError`` (its loop only
forgives a locked SQLite database), so a PostgreSQL restart or failover left
the plant without a worker until someone noticed. This runs the same loop
(same options, same claiming of tasks) and, when the database goes away,
closes the connections, waits with a doubling backoff and resumes. A task
that was running when the database went away is left ``running``; the job
sweep (``run_workers``) fails its job once its heartbeat is too old, and it
can be retried. Always runs without the autoreloader.
"""

import logging
import time

from django.core.management.base import CommandError
from django.db import InterfaceError, OperationalError, connections
from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand
from django_tasks_db.management.commands.db_worker import Worker

logger = logging.getLogger("django_tasks_db")

FIRST_WAIT_SECONDS = 0.5
LONGEST_WAIT_SECONDS = 30.0
# A loop that ran this long before failing was healthy: start the backoff afresh.
HEALTHY_SECONDS = 60.0


class ResilientWorker(Worker):
    """``db_worker``'s worker, restarted with backoff when the database is unavailable."""

    def run(self) -> None:
        wait = FIRST_WAIT_SECONDS
        while self.running:
            started = time.monotonic()
            try:
                super().run()
                return
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() - started > HEALTHY_SECONDS:
                    wait = FIRST_WAIT_SECONDS
                logger.warning(
                    "Database unavailable (%s: %s); worker %s resumes in %.1f s",
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                    self.worker_id,
                    wait,
                )
                connections.close_all()
                time.sleep(wait)
                wait = min(wait * 2, LONGEST_WAIT_SECONDS)


class Command(DbWorkerCommand):
    help = (
        "Run a database task worker (as db_worker) that waits for the database and "
        "resumes when it is restarted, instead of exiting."
    )

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        **options,
    ) -> None:
        self.configure_logging(verbosity)
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        worker = ResilientWorker(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=excluded,
        )
        worker.configure_signals()
        worker.run()
