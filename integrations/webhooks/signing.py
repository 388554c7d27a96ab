"""The body a receiver gets and the signature that proves it came from us.

``X-LineSight-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
The timestamp is inside the signed text, so a receiver that refuses an old
``t`` (5 minutes is usual) refuses a replayed request. The README shows the
receiver's side.
"""

import hashlib
import hmac
import json

SIGNATURE_HEADER = "X-LineSight-Signature"
EVENT_HEADER = "X-LineSight-Event"
DELIVERY_HEADER = "X-LineSight-Delivery"


def envelope_body(envelope: dict) -> bytes:
    """The exact bytes posted (and signed): compact JSON, UTF-8."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
