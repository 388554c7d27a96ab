"""``manage.py webhooks_dispatch``: outbox events to webhook deliveries (run_workers runs it)."""

import signal

from django.core.management.base import BaseCommand

from integrations.webhooks import dispatch


class Command(BaseCommand):
    help = (
        "Fan the outbox's events out to webhook subscriptions (deliveries go out on the "
        "task queue 'webhooks'); runs until stopped."
    )

    def handle(self, *args, **options):
        self._stopping = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._stop)
        if options["verbosity"] > 1:
            self.stdout.write("webhooks_dispatch: fanning out the outbox")
        dispatch.run(stopping=lambda: self._stopping)

    def _stop(self, signum, frame) -> None:
        self._stopping = True
