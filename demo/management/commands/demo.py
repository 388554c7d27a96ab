"""`make demo`: migrate, load the demo plant and model, serve, and keep two stations posting."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from integrations.mqtt.client import broker_answers


def _stop_like_ctrl_c(signum, frame):
    """A closed terminal or a service manager stops the demo as Ctrl-C does: children too."""
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Run the demo: migrate, load the demo plant, users and model (once), then serve on "
        "HOST:PORT through the ASGI server with the task worker and one simulated camera per "
        "station, until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--rate", type=float, default=1.0, help="Frames per second per station")
        parser.add_argument("--no-simulators", action="store_true", help="Serve only")
        parser.add_argument("--model-zip", type=Path, help="Use this model instead of training one")
        parser.add_argument(
            "--duration", type=float, default=0, help="Stop after N seconds (0: never)"
        )

    def handle(self, *args, **options):
        for stop_signal in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(stop_signal, _stop_like_ctrl_c)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        mqtt = self._mqtt_broker()
        frames_dir = Path(settings.LINESIGHT["DEMO_DIR"]) / "frames"
        seed = self._seed(frames_dir, options["model_zip"])
        url = f"http://{options['host']}:{options['port']}"
        children: list[subprocess.Popen] = []
        try:
            children.append(_start_server(options["host"], options["port"]))
            children.append(
                subprocess.Popen(
                    [*_manage(), "run_workers", "--verbosity", "0"],
                    cwd=settings.BASE_DIR,
                )
            )
            self._wait_until_up(url, children[0])
            if not options["no_simulators"]:
                children += _start_simulators(url, seed["stations"], frames_dir, options["rate"])
            self._banner(url, seed, frames_dir, mqtt)
            self._run(children, options["duration"])
        finally:
            self._stop(children)

    @staticmethod
    def _mqtt_broker() -> tuple[str, int] | None:
        """The broker the demo publishes to: the configured one, else one answering on
        127.0.0.1:1883 (None: no MQTT).

        A local broker is handed to the server and to run_workers (which starts the
        sender) through their environment; this process's settings stay as they are.
        """
        if settings.MQTT_HOST:
            return settings.MQTT_HOST, settings.MQTT_PORT
        if not broker_answers("127.0.0.1", 1883):
            return None
        os.environ["LINESIGHT_MQTT_HOST"] = "127.0.0.1"
        os.environ["LINESIGHT_MQTT_PORT"] = "1883"
        return "127.0.0.1", 1883

    def _seed(self, frames_dir: Path, model_zip: Path | None) -> dict:
        """Load the demo plant, users and model (idempotent); returns what seed_demo printed."""
        seed_args = ["--json", "--frames", str(frames_dir)]
        if model_zip:
            seed_args += ["--model-zip", str(model_zip)]
        out = io.StringIO()
        call_command("seed_demo", *seed_args, stdout=out, stderr=self.stderr)
        return json.loads(out.getvalue())

    def _wait_until_up(self, url: str, server: subprocess.Popen) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise CommandError(f"The server exited (code {server.returncode}); see above.")
            try:
                if requests.get(f"{url}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise CommandError(f"The server did not answer on {url} within two minutes.")

    def _banner(self, url: str, seed: dict, frames_dir: Path, mqtt: tuple[str, int] | None) -> None:
        write = self.stdout.write
        station = seed["stations"][0]
        write("")
        write(self.style.SUCCESS(f"LineSight demo is running on {url}"))
        write(f"  Line dashboard:  {url}/dashboard/lines/{station['line']}/")
        write(f"  Review queue:    {url}/dashboard/review/")
        write(f"  Reports:         {url}/reports/")
        write(f"  Admin:           {url}/admin/")
        write(f"  API docs:        {url}/api/docs/")
        write("  Logins:")
        for user in seed["users"]:
            password = user["password"] or "(the password you set)"
            write(f"    {user['username']:<10} {password:<24} {user['role']}")
        sample = next(frames_dir.rglob("*.jpg"), None)
        if sample is not None:
            write("  Post a frame yourself:")
            write(
                f"    curl -H 'Authorization: Token {station['token']}' "
                f"-F station={station['code']} -F image=@{sample} {url}/api/v1/inspections/"
            )
        if mqtt is not None:
            host, port = mqtt
            write("  Watch the MQTT events:")
            port_option = f" -p {port}" if port != 1883 else ""
            write(
                f"    mosquitto_sub -h {host}{port_option} -t '{settings.MQTT_TOPIC_PREFIX}/#' -v"
            )
        write("Press Ctrl-C to stop.")

    def _run(self, children: list[subprocess.Popen], duration: float) -> None:
        deadline = time.monotonic() + duration if duration else None
        try:
            while deadline is None or time.monotonic() < deadline:
                if children[0].poll() is not None or children[1].poll() is not None:
                    raise CommandError("The server or the task worker stopped; stopping the demo.")
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping...")

    def _stop(self, children: list[subprocess.Popen]) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in reversed(children):
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def _manage() -> list[str]:
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]


def _start_server(host: str, port: int) -> subprocess.Popen:
    """One ASGI process: the demo is the embedded shape."""
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application"]
    command += ["--host", host, "--port", str(port), "--no-access-log"]
    command += ["--timeout-graceful-shutdown", "5"]
    return subprocess.Popen(command, cwd=settings.BASE_DIR)


def _start_simulators(
    url: str, stations: list[dict], frames_dir: Path, rate: float
) -> list[subprocess.Popen]:
    """One simulated camera per station, each posting the demo's frames with its own token."""
    simulators = []
    for number, station in enumerate(stations):
        command = [*_manage(), "simulate_station", "--url", url, "--station", station["code"]]
        command += ["--token", station["token"], "--images", str(frames_dir)]
        command += ["--rate", str(rate), "--seed", str(number), "--verbosity", "0"]
        simulators.append(subprocess.Popen(command, cwd=settings.BASE_DIR))
    return simulators
