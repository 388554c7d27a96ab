"""`make demo` publishes to a broker answering on 127.0.0.1:1883 and says how to watch it."""

import json
import signal
import sqlite3
import subprocess
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import missing_service
from tests.demo.test_demo_command import demo_command
from tests.servers import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_model_zip(tmp_path_factory):
    from demo.frames import CLASSES
    from tests import tf_models

    path = tmp_path_factory.mktemp("tiny") / "tiny-demo.zip"
    path.write_bytes(
        tf_models.savedmodel_zip(tf_models.colour_classifier(labels=CLASSES), labels=CLASSES)
    )
    return path


@pytest.fixture
def local_broker_watcher():
    """A subscriber on the local broker (1883) to everything under linesight/."""
    received: list[tuple[str, dict]] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-test-{uuid.uuid4()}")
    client.on_message = lambda c, u, message: received.append(
        (message.topic, json.loads(message.payload))
    )
    try:
        client.connect("127.0.0.1", 1883, 30)
    except OSError:
        missing_service("No MQTT broker on 127.0.0.1:1883 (.ci/run starts mosquitto)")
    client.subscribe("linesight/+/+/+/inspections", qos=1)
    client.loop_start()
    yield received
    client.disconnect()
    client.loop_stop()


def test_the_demo_publishes_its_frames_to_the_local_broker(
    tmp_path, tiny_model_zip, local_broker_watcher
):
    args, env = demo_command(tmp_path, tiny_model_zip, seconds=0)
    demo = subprocess.Popen(
        args, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    banner = []
    try:
        for line in demo.stdout:
            banner.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        deadline = time.monotonic() + 120
        while not _demo_frames(local_broker_watcher) and time.monotonic() < deadline:
            time.sleep(0.2)
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)
    finally:
        demo.kill()
    assert "mosquitto_sub -h 127.0.0.1 -t 'linesight/#' -v" in "".join(banner)

    with sqlite3.connect(tmp_path / "linesight.sqlite3") as db:
        stored = dict(db.execute("SELECT id, verdict FROM inspection_inspection").fetchall())
    published = [
        body for body in _demo_frames(local_broker_watcher) if body["data"]["id"] in stored
    ]
    assert published, "no frame of the demo reached the local broker"
    assert all(stored[body["data"]["id"]] == body["data"]["verdict"] for body in published)


def _demo_frames(received: list[tuple[str, dict]]) -> list[dict]:
    return [body for topic, body in received if body["station"] in ("L1-S1", "L1-S2")]
