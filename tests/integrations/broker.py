"""A private Mosquitto per test module, a recording subscriber and the sender as a process.

The broker listens on a free loopback port with persistence on, so a test
can stop it and start it again: the subscriber's session (clean_session
off, QoS 1) and the retained messages survive the restart, as on a plant's
broker. The shared broker on 1883 is never touched.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.conftest import missing_service
from tests.servers import PROJECT_ROOT, free_port, test_database_url


class Broker:
    """Anonymous plain MQTT, or (``secure=True``) TLS with a CA of its own and a password."""

    username = "linesight"
    password = "plant-secret"

    def __init__(self, folder: Path, *, secure: bool = False):
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            missing_service("mosquitto not installed: apt-get install mosquitto")
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self.folder = folder
        self.secure = secure
        self.ca_file = folder / "ca.crt"
        self.config = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {folder}/",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:  # stay root: the test's folders are not open to a "mosquitto" user
            lines.append("user root")
        if secure:
            _make_certificates(folder)
            passwords = folder / "passwords"
            subprocess.run(
                ["mosquitto_passwd", "-c", "-b", str(passwords), self.username, self.password],
                check=True,
            )
            passwords.chmod(0o644)
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {folder / 'server.crt'}",
                f"keyfile {folder / 'server.key'}",
                "allow_anonymous false",
                f"password_file {passwords}",
            ]
        else:
            lines.append("allow_anonymous true")
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.folder / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"private mosquitto did not start: {self.log()}")

    def log(self) -> str:
        return (self.folder / "mosquitto.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: mosquitto saves its sessions and retained messages
            self.process.wait(timeout=10)


def _make_certificates(folder: Path) -> None:
    """A CA of the test's own and a server certificate for 127.0.0.1 signed by it."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=linesight-test-ca",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    )
    (folder / "server.key").chmod(0o644)  # mosquitto may read it as its own user


class Received:
    """One message as a subscriber got it."""

    def __init__(self, message: mqtt.MQTTMessage):
        self.topic = message.topic
        self.retain = bool(message.retain)
        self.body = json.loads(message.payload)
        self.at = time.time()


class Subscriber:
    """Subscribed to ``{prefix}/#`` at QoS 1 with a persistent session; records everything."""

    def __init__(
        self, port: int, prefix: str, *, persistent: bool = True, broker: "Broker | None" = None
    ):
        self.messages: list[Received] = []
        self.on_first_message = None  # called once, on the next message's arrival
        self._lock = threading.Condition()
        self.prefix = prefix
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:10]}",
            clean_session=not persistent,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        if broker is not None and broker.secure:
            self.client.tls_set(ca_certs=str(broker.ca_file))
            self.client.username_pw_set(broker.username, broker.password)
        self._subscribed = threading.Event()
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("subscriber did not connect")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(f"{self.prefix}/#", qos=1)
        self._subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        if self.on_first_message is not None:  # in the network thread: at once
            hook, self.on_first_message = self.on_first_message, None
            hook()
        with self._lock:
            self.messages.append(Received(message))
            self._lock.notify_all()

    def wait_for(self, predicate, timeout: float = 20.0) -> list[Received]:
        """Wait until ``predicate(messages)`` holds; return the messages so far."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out; got {len(self.messages)} messages")
                self._lock.wait(remaining)
            return list(self.messages)

    def on(self, suffix: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic.endswith("/" + suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sender_env(port: int, prefix: str, data_dir: Path) -> dict:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LINESIGHT_") and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LINESIGHT_SECRET_KEY": "mqtt-test-" + "k" * 50,
        "LINESIGHT_DATA_DIR": str(data_dir),
        "DATABASE_URL": _tagged(test_database_url()),
        "LINESIGHT_MQTT_HOST": "127.0.0.1",
        "LINESIGHT_MQTT_PORT": str(port),
        "LINESIGHT_MQTT_TOPIC_PREFIX": prefix,
    }


# PostgreSQL sessions of test senders carry this name, so a test can cut exactly them.
SENDER_APPLICATION_NAME = "linesight_mqtt_test_sender"


def _tagged(database_url: str) -> str:
    if database_url.startswith("postgres"):
        return f"{database_url}?application_name={SENDER_APPLICATION_NAME}"
    return database_url


class SenderProcess:
    """``manage.py mqtt_sender`` against the test database and the private broker."""

    def __init__(self, port: int, prefix: str, data_dir: Path, extra_env: dict | None = None):
        self.env = {**sender_env(port, prefix, data_dir), **(extra_env or {})}
        self.log_path = data_dir / f"sender-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "mqtt_sender"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def first_seen(messages: list[Received]) -> list[Received]:
    """The messages without repeats of a (topic, id): what a deduplicating consumer keeps."""
    seen, kept = set(), []
    for message in messages:
        key = (message.topic, message.body["id"])
        if key not in seen:
            seen.add(key)
            kept.append(message)
    return kept
