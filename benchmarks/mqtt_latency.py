"""MQTT latency: from the commit of a frame's outbox message to its arrival at a subscriber.

Outbox messages are added at a steady rate exactly as a judged frame adds
one (``outbox_add`` inside the frame's transaction, an inspection-sized
payload, one frame in four a fail so ``reject`` is published too); the real
sender (``manage.py mqtt_sender``, production settings) publishes them to a
private Mosquitto; a paho subscriber (a process of its own) stamps arrivals.
Latency per frame = arrival on ``.../inspections`` - the commit time taken
right after the transaction; both clocks are this machine's. Target: p99
under 50 ms at 100 frames/s on PostgreSQL.

Modes: ``listen`` (the default shape: the sender sleeps on LISTEN, outbox_add
NOTIFYs with the commit) and ``poll-N`` (LINESIGHT_MQTT_IDLE_POLL_MS=N).

    .venv/bin/python benchmarks/mqtt_latency.py [--rate 100] [--seconds 20]
        [--modes listen,poll-10] [--database-url postgres://postgres@127.0.0.1:5432/linesight_mqtt_bench]
"""

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_P99_MS = 50.0
PREFIX = "bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_broker(folder: Path, nodelay: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay {nodelay}\n"
    )
    broker = subprocess.Popen(["mosquitto", "-c", str(config)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return broker, port


def recreate_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')


def setup_django(database_url: str, port: int, data_dir: Path) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LINESIGHT_SECRET_KEY": "mqtt-bench-" + "b" * 50,
            "LINESIGHT_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "LINESIGHT_MQTT_HOST": "127.0.0.1",
            "LINESIGHT_MQTT_PORT": str(port),
            "LINESIGHT_MQTT_TOPIC_PREFIX": PREFIX,
            "LINESIGHT_LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def frame_data(index: int) -> dict:
    """An inspection-sized payload (as ``inspection.events.inspection_payload`` makes it)."""
    fail = index % 4 == 1
    return {
        "id": index,
        "station": "ST1",
        "line": "L1",
        "product": None,
        "verdict": "fail" if fail else "pass",
        "label": "crack" if fail else "ok",
        "defect_type": "crack" if fail else None,
        "defect_severity": "major" if fail else None,
        "confidence": 0.97,
        "top_k": [{"label": "ok", "confidence": 0.97}, {"label": "crack", "confidence": 0.02}],
        "review_status": "not_required",
        "review_reason": "",
        "source": "server",
        "edge_rechecked": False,
        "edge_disagreement": False,
        "model_version": {"model": "bottle", "version": 3},
        "latency_ms": 4.2,
        "serial": f"SN-{index}",
        "lot": "LOT-7",
        "image_url": f"/api/v1/inspections/{index}/image/",
        "captured_at": "2026-12-01T16:00:00+00:00",
        "received_at": "2026-12-01T16:00:00+00:00",
    }


def _subscribe(port: int, ready, stop, results) -> None:
    """In a process of its own, so the inserting loop never delays an arrival stamp."""
    import paho.mqtt.client as mqtt

    times: dict[str, float] = {}

    def on_message(client, userdata, message) -> None:
        times.setdefault(json.loads(message.payload)["id"], time.time())

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.connect("127.0.0.1", port, 30)
    client.subscribe(f"{PREFIX}/+/+/+/inspections", qos=1)
    client.loop_start()
    ready.set()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    results.put(times)


class Arrivals:
    """A subscriber process; ``times`` (message id -> arrival) once ``collect`` is called."""

    def __init__(self, port: int):
        context = multiprocessing.get_context("spawn")
        self.ready, self.stop, self.results = context.Event(), context.Event(), context.Queue()
        self.process = context.Process(
            target=_subscribe, args=(port, self.ready, self.stop, self.results)
        )
        self.process.start()
        self.ready.wait(60)
        self.times: dict[str, float] = {}

    def collect(self) -> dict[str, float]:
        self.stop.set()
        self.times = self.results.get(timeout=60)
        self.process.join(timeout=10)
        return self.times


def warm_up(timeout: float = 120.0) -> None:
    from django.db import transaction

    from common.models import OutboxMessage
    from common.outbox import INSPECTION_JUDGED, outbox_add

    deadline = time.monotonic() + timeout
    with transaction.atomic():
        probe = outbox_add(INSPECTION_JUDGED, scope=("PL1", "L1", "ST1"), data=frame_data(-1))
    while OutboxMessage.objects.filter(pk=probe.pk, mqtt_sent_at__isnull=True).exists():
        if time.monotonic() > deadline:
            raise SystemExit("The sender published nothing within two minutes.")
        time.sleep(0.05)
    time.sleep(1)


def run_mode(mode: str, rate: float, seconds: float, port: int) -> dict:
    from django.db import transaction

    from common.outbox import INSPECTION_JUDGED, outbox_add

    env = {**os.environ}
    if mode.startswith("poll-"):
        env["LINESIGHT_MQTT_IDLE_POLL_MS"] = mode.split("-", 1)[1]
    sender = subprocess.Popen(
        [sys.executable, "manage.py", "mqtt_sender", "-v0"], cwd=ROOT, env=env
    )
    arrivals = Arrivals(port)
    warm_up()  # the sender is up and has drained what an earlier mode left
    committed: dict[str, float] = {}
    interval = 1 / rate
    started = time.monotonic()
    for index in range(int(rate * seconds)):
        time.sleep(max(0.0, started + index * interval - time.monotonic()))
        with transaction.atomic():
            message = outbox_add(
                INSPECTION_JUDGED, scope=("PL1", "L1", "ST1"), data=frame_data(index)
            )
        committed[str(message.message_id)] = time.time()
    sent_rate = len(committed) / (time.monotonic() - started)
    from common.models import OutboxMessage

    deadline = time.monotonic() + 30
    while OutboxMessage.objects.filter(mqtt_sent_at__isnull=True).exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.5)
    arrivals.collect()
    sender.terminate()
    sender.wait(timeout=15)
    latencies = [
        (arrivals.times[m] - t) * 1000 for m, t in committed.items() if m in arrivals.times
    ]
    return {
        "mode": mode,
        "frames": len(committed),
        "rate": round(sent_rate, 1),
        "lost": len(committed) - len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--modes", default="listen,poll-10")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/linesight_mqtt_bench"
    )
    parser.add_argument(
        "--broker-nodelay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Mosquitto's set_tcp_nodelay (on by default, as the README recommends)",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="linesight-mqtt-bench-"))
    broker, port = start_broker(folder, "true" if args.broker_nodelay else "false")
    try:
        recreate_database(args.database_url)
        setup_django(args.database_url, port, folder)
        for mode in args.modes.split(","):
            result = run_mode(mode, args.rate, args.seconds, port)
            verdict = "OK" if result["p99_ms"] < TARGET_P99_MS and not result["lost"] else "MISS"
            print(json.dumps(result), f"target p99 < {TARGET_P99_MS:.0f} ms: {verdict}", flush=True)
    finally:
        broker.terminate()
        broker.wait(timeout=10)


if __name__ == "__main__":
    main()
