"""Run the task workers: one db_worker process per queue group, the job sweep, periodic jobs.

Each group of settings.TASK_WORKER_GROUPS gets its own process, so a long
evaluation (queue "evaluations") never waits behind, nor delays, a
validation (queue "validation"). Long-running commands of other apps
(settings.WORKER_COMMANDS: the webhook fan-out, the MQTT sender when
MQTT_HOST is set) run beside them. If one worker stops, all stop, so a
supervisor (systemd, the demo command) sees it and restarts them.
"""

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, close_old_connections

from common.jobs import job_enqueue, jobs_sweep, periodic_jobs_prune
from common.models import Job, JobState
from common.outbox import outbox_prune


class Command(BaseCommand):
    help = (
        "Start one db_worker per queue group (TASK_WORKER_GROUPS), sweep dead jobs and "
        "enqueue the periodic ones (PERIODIC_JOBS)."
    )

    def handle(self, *args, **options):
        verbosity = str(options["verbosity"])
        self._stopping = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._stop)
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "worker",  # db_worker that waits out a database restart
                    "--queue-name",
                    ",".join(group),
                    "--interval",  # how long an idle worker waits before looking again
                    str(min(settings.TASK_WORKER_POLL_SECONDS.get(queue, 1.0) for queue in group)),
                    "--no-reload",
                    "--verbosity",
                    verbosity,
                ],
                cwd=settings.BASE_DIR,
            )
            for group in settings.TASK_WORKER_GROUPS
        ]
        if options["verbosity"] > 0:
            for group, child in zip(settings.TASK_WORKER_GROUPS, children, strict=True):
                self.stdout.write(f"worker {child.pid}: queues {', '.join(group)}")
        # Long-running commands of other apps (the webhook fan-out...), named in settings
        # so common imports none of them; supervised like the workers.
        for command in settings.WORKER_COMMANDS:
            child = subprocess.Popen(
                [sys.executable, "manage.py", *command, "--verbosity", verbosity],
                cwd=settings.BASE_DIR,
            )
            children.append(child)
            if options["verbosity"] > 0:
                self.stdout.write(f"{command[0]} {child.pid}")
        try:
            self._supervise(children)
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()

    def _stop(self, signum, frame) -> None:
        self._stopping = True

    def _supervise(self, children: list[subprocess.Popen]) -> None:
        next_sweep = 0.0
        started = time.monotonic()
        due = {kind: started + seconds for kind, seconds in settings.PERIODIC_JOBS.items()}
        while not self._stopping:
            if any(child.poll() is not None for child in children):
                raise CommandError("A task worker stopped; stopping the others.")
            try:
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + settings.JOB_SWEEP_INTERVAL_SECONDS
                    jobs_sweep()
                    periodic_jobs_prune()
                    outbox_prune()
                self._enqueue_periodic(due)
            except (OperationalError, InterfaceError):
                close_old_connections()  # the database is restarting: next time
            time.sleep(1)

    @staticmethod
    def _enqueue_periodic(due: dict[str, float]) -> None:
        """Enqueue each periodic job kind whose time has come, unless one is still pending."""
        for kind, seconds in settings.PERIODIC_JOBS.items():
            if seconds <= 0 or time.monotonic() < due[kind]:
                continue
            due[kind] = time.monotonic() + seconds
            pending = Job.objects.filter(kind=kind, state__in=[JobState.QUEUED, JobState.RUNNING])
            if not pending.exists():
                job_enqueue(kind=kind)
