"""A webhook receiver for tests: a real HTTP server on loopback, in a thread.

It records every request (headers, body, when) and answers as the test
scripts it: a status, a delay, a redirect, or a body that never ends.
``verify_signature`` is the receiver's code the README shows, verbatim.
"""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# --- The README's verification code (keep the two identical) -------------------------
def verify_signature(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """True when X-LineSight-Signature ``header`` signs ``body`` with ``secret``, recently."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False  # too old (or from the future): a replay
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


# ---------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    endless: bool = False  # stream a body that never ends (until the client hangs up)
    headers: dict = field(default_factory=dict)


@dataclass
class Received:
    headers: dict
    body: bytes
    at: float  # time.time() when it arrived
    status: int = 0  # what the receiver answered

    @property
    def envelope(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """``reply(received) -> Reply`` decides each answer (default: 200)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.reply: Callable[[Received], Reply] = lambda received: Reply()
        self.streamed_bytes = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: without this, Nagle holds the body back
            # until the client's delayed ACK (40 ms per request on a kept-alive connection).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received = Received(dict(self.headers), self.rfile.read(length), time.time())
                reply = receiver.reply(received)
                received.status = reply.status
                with receiver._lock:
                    receiver.requests.append(received)
                time.sleep(reply.delay)
                receiver._answer(self, reply)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _answer(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            if reply.endless:
                handler.send_header("Content-Type", "text/plain")
                handler.end_headers()
                self._stream(handler)
                return
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
        except OSError:
            pass  # the client hung up: what a capped or timed-out client does

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        chunk = b"x" * 65536
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            handler.wfile.write(chunk)
            handler.wfile.flush()
            self.streamed_bytes += len(chunk)
        handler.close_connection = True

    def accepted(self) -> list[Received]:
        """The requests it answered with a 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
