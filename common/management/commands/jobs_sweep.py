"""Fail the running jobs whose worker died (heartbeat older than the timeout)."""

from django.core.management.base import BaseCommand

from common.jobs import heartbeat_timeout, jobs_sweep


class Command(BaseCommand):
    help = "Fail running jobs whose heartbeat is older than JOB_HEARTBEAT_TIMEOUT_SECONDS."

    def add_arguments(self, parser):
        parser.add_argument(
            "--timeout", type=int, default=None, help="Seconds of silence (default: the setting)."
        )

    def handle(self, *args, **options):
        timeout = options["timeout"] if options["timeout"] is not None else heartbeat_timeout()
        failed = jobs_sweep(timeout_seconds=timeout)
        self.stdout.write(f"{failed} job(s) failed: no heartbeat for over {timeout} s.")
