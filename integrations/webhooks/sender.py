"""One POST to a receiver: pinned to the checked address, no redirects, bounded in time and size."""

import time
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from integrations.webhooks.addresses import Target

# Answers worth another try; any other non-2xx is the receiver refusing this event.
RETRYABLE_STATUSES = {408, 425, 429}
EXCERPT_CHARS = 1000


@dataclass(frozen=True)
class Answer:
    """How one attempt went: ``ok`` for a 2xx; ``retryable`` when trying later may help."""

    ok: bool
    retryable: bool
    status: int | None
    elapsed_ms: float
    error: str = ""
    excerpt: str = ""


def connection_pool(target: Target, timeout: float) -> urllib3.HTTPConnectionPool:
    """Connections to the checked address only (kept alive between the POSTs of a batch)."""
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.ip,
            target.port,
            timeout=limits,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(target.ip, target.port, timeout=limits, retries=False)


def _read_capped(response: urllib3.BaseHTTPResponse, max_bytes: int, deadline: float) -> bytes:
    """At most ``max_bytes`` of the answer, and no reading past the deadline.

    A connection whose answer was read to its end goes back to the pool (kept
    alive); one cut short is closed.
    """
    chunks, size = [], 0
    while size <= max_bytes and time.monotonic() < deadline:
        chunk = response.read(min(8192, max_bytes + 1 - size))
        if not chunk:
            response.release_conn()
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    response.close()
    return b"".join(chunks)[:max_bytes]


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    max_bytes: int,
    pool: urllib3.HTTPConnectionPool | None = None,
) -> Answer:
    """POST ``body`` (through ``pool`` if given); never raises for what the network or the
    receiver does."""
    started = time.monotonic()
    own_pool = pool is None
    pool = connection_pool(target, timeout) if own_pool else pool
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": _host_header(target)},
            redirect=False,
            preload_content=False,
            release_conn=False,
            assert_same_host=False,
        )
        try:
            content = _read_capped(response, max_bytes, started + timeout)
        except BaseException:
            response.close()
            raise
    except NewConnectionError as error:  # urllib3 makes it a TimeoutError too: first
        return _failed(started, f"Could not connect: {error}")
    except TimeoutError:
        return _failed(started, f"No answer within {timeout:g} s (timeout).")
    except (HTTPError, OSError) as error:
        return _failed(started, f"Could not connect: {type(error).__name__}: {error}")
    finally:
        if own_pool:
            pool.close()
    return _answer(response, content, started)


def _failed(started: float, error: str) -> Answer:
    elapsed = (time.monotonic() - started) * 1000
    return Answer(ok=False, retryable=True, status=None, elapsed_ms=elapsed, error=error[:500])


def _answer(response: urllib3.BaseHTTPResponse, content: bytes, started: float) -> Answer:
    elapsed = (time.monotonic() - started) * 1000
    status = response.status
    excerpt = content[:EXCERPT_CHARS].decode("utf-8", errors="replace")
    if 200 <= status < 300:
        return Answer(ok=True, retryable=False, status=status, elapsed_ms=elapsed, excerpt=excerpt)
    if 300 <= status < 400:
        where = response.headers.get("Location", "")
        error = f"{status} redirect to '{where}': redirects are not followed; fix the URL."
    else:
        error = f"{status} {response.reason or ''}".strip()
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    return Answer(
        ok=False,
        retryable=retryable,
        status=status,
        elapsed_ms=elapsed,
        error=error[:500],
        excerpt=excerpt,
    )
