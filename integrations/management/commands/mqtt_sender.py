"""Publish the outbox to the MQTT broker of settings.MQTT_HOST until stopped (SIGTERM/SIGINT)."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.mqtt.sender import MqttSender


class Command(BaseCommand):
    help = (
        "Publish outbox events (frames, decisions, deployments, jobs) to the MQTT broker, "
        "in order, at least once; waits out broker and database outages."
    )

    def handle(self, *args, **options):
        if not settings.MQTT_HOST:
            raise CommandError("MQTT is off: set LINESIGHT_MQTT_HOST to the broker's host name.")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: stop.set())
        sender = MqttSender()
        if options["verbosity"] > 0:
            self.stdout.write(
                f"MQTT sender: {settings.MQTT_HOST}:{settings.MQTT_PORT}, "
                f"topics under {settings.MQTT_TOPIC_PREFIX}/",
                ending="\n",
            )
            self.stdout.flush()
        sender.run(stop)
