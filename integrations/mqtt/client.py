"""One connection to the broker, from settings: QoS 1 publishing that waits for every PUBACK.

A connection that is lost is not repaired here: the sender drops it, opens a
new one with backoff and publishes again from the first message not marked
sent, so paho's own session resume (and its reordering of resends) never
comes into play.
"""

import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from django.conf import settings

from integrations.mqtt.topics import Publication

CONNECT_TIMEOUT_SECONDS = 5.0
# Publications allowed in flight (sent, PUBACK not yet back): a batch goes out in one stream.
MAX_INFLIGHT = 1000


class BrokerUnavailable(Exception):
    """The broker refused, dropped or did not answer in time."""


@dataclass(frozen=True)
class BrokerConfig:
    host: str
    port: int = 1883
    username: str = ""
    password: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    keepalive: int = 30
    client_id_prefix: str = "linesight"

    @classmethod
    def from_settings(cls) -> "BrokerConfig":
        return cls(
            host=settings.MQTT_HOST,
            port=settings.MQTT_PORT,
            username=settings.MQTT_USERNAME,
            password=settings.MQTT_PASSWORD,
            tls=settings.MQTT_TLS,
            ca_file=settings.MQTT_TLS_CA_FILE,
            cert_file=settings.MQTT_TLS_CERT_FILE,
            key_file=settings.MQTT_TLS_KEY_FILE,
            keepalive=settings.MQTT_KEEPALIVE_SECONDS,
            client_id_prefix=settings.MQTT_CLIENT_ID_PREFIX,
        )

    def client_id(self) -> str:
        """One id per process: two senders never take over each other's session."""
        return f"{self.client_id_prefix}-{socket.gethostname()}-{os.getpid()}"


class BrokerConnection:
    """A connected paho client; ``publish_all`` returns once the broker acknowledged each one."""

    def __init__(self, config: BrokerConfig):
        self.config = config
        self._changed = threading.Condition()
        self._connected = False
        self._lost_reason = ""
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=config.client_id(),
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(0)
        if config.username:
            client.username_pw_set(config.username, config.password or None)
        if config.tls:
            client.tls_set(
                ca_certs=config.ca_file or None,
                certfile=config.cert_file or None,
                keyfile=config.key_file or None,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._changed:
            if reason_code.is_failure:
                self._lost_reason = f"connection refused: {reason_code}"
            else:
                self._connected = True
            self._changed.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._changed:
            self._connected = False
            self._lost_reason = self._lost_reason or f"disconnected: {reason_code}"
            self._changed.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._changed:
            self._changed.notify_all()

    @property
    def connected(self) -> bool:
        return self._connected and not self._lost_reason

    def open(self) -> None:
        try:
            self.client.connect(self.config.host, self.config.port, self.config.keepalive)
        except (OSError, ValueError) as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        # Small packets go out at once: with Nagle's algorithm a PUBLISH could wait for the
        # broker's delayed ACK of the one before (up to 40 ms on Linux).
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
        with self._changed:
            while not self._connected and not self._lost_reason:
                if not self._changed.wait(deadline - time.monotonic()):
                    break
        if not self.connected:
            self.close()
            raise BrokerUnavailable(self._lost_reason or "no CONNACK in time")

    def publish_all(self, publications: Sequence[Publication], *, timeout: float) -> int:
        """Publish in order at QoS 1; return how many were acknowledged, in order.

        Raises BrokerUnavailable (with ``acknowledged`` set) when the
        connection is lost or the broker stops acknowledging before all are.
        """
        infos = []
        for publication in publications:
            info = self.client.publish(
                publication.topic, publication.payload, qos=1, retain=publication.retain
            )
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            infos.append(info)
        deadline = time.monotonic() + timeout
        acknowledged = 0
        with self._changed:
            while True:
                while acknowledged < len(infos) and infos[acknowledged].is_published():
                    acknowledged += 1
                if acknowledged == len(publications):
                    return acknowledged
                if not self.connected or len(infos) < len(publications):
                    reason = self._lost_reason or "publish refused"
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    reason = f"no PUBACK within {timeout} s"
                    break
                self._changed.wait(min(remaining, 0.5))
        error = BrokerUnavailable(reason)
        error.acknowledged = acknowledged
        raise error

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def broker_answers(host: str, port: int = 1883, *, timeout: float = 1.0) -> bool:
    """True when an MQTT broker accepts an anonymous connection at host:port within timeout."""
    probe = BrokerConnection(BrokerConfig(host=host, port=port, client_id_prefix="linesight-probe"))
    probe.client.connect_timeout = timeout
    try:
        probe.open()
    except BrokerUnavailable:
        return False
    probe.close()
    return True
