"""Live events: group names and payloads in one place, sent only after commit.

Dashboards of a line listen on ``line.<code>``; review queues on ``review``.
Callers schedule these with ``transaction.on_commit`` so nobody sees an event
for a row that was rolled back. Every event carries ``sent_at`` (Unix time,
seconds) so a client can tell how late it arrived.

Events (``type``):

- ``inspection.created``: a frame was judged (line group; review group too when it waits for review)
- ``inspection.verified``: an inspector decided a frame (line and review groups)
- ``review.claimed`` / ``review.released``: an inspector opened / left a frame of the queue
- ``deployment.changed``: a station serves another model version, or none (line and runtime groups)
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import AbstractBaseUser

from inspection.models import Inspection, Verification
from inspection.selectors import inspection_queryset
from masterdata.models import Station
from models_registry.models import Deployment

logger = logging.getLogger(__name__)

# Longest a request waits on the channel layer after its row is committed: a
# Redis that hangs (not refusing, just silent) must not hold the camera's answer.
SEND_TIMEOUT_SECONDS = 2.0

REVIEW_GROUP = "review"
RUNTIME_GROUP = "runtime"  # every worker process: load what was just deployed


def line_group(line_code: str) -> str:
    return f"line.{line_code}"


# Set by the lean frame route (``inspection.api.frames_asgi``) while it judges a frame:
# the events of that request wait here and are sent after its answer went out.
_after_response: ContextVar[list[Callable[[], Awaitable[None]]] | None] = ContextVar(
    "linesight_events_after_response", default=None
)


@contextmanager
def sent_after_response() -> Iterator[list[Callable[[], Awaitable[None]]]]:
    """Events sent while this is active are collected, for ``send_pending`` after the answer.

    For an async caller that runs the request's sync work in a thread (the
    context is copied there): the device's answer never waits on the channel
    layer. Only after commit, as ever: the events are still scheduled by
    ``transaction.on_commit``.
    """
    pending: list[Callable[[], Awaitable[None]]] = []
    token = _after_response.set(pending)
    try:
        yield pending
    finally:
        _after_response.reset(token)


async def send_pending(pending: list[Callable[[], Awaitable[None]]]) -> None:
    """Send the events collected by ``sent_after_response``, on the caller's event loop."""
    for send in pending:
        await send()


def _send(groups: str | list[str], event: dict) -> None:
    """Send ``event`` to one group or several, in a single hop to the event loop.

    Best effort: the row is committed, so a channel layer that is down (Redis
    restarting, connection lost, timeout) costs this live event only, never
    the answer to the request that wrote the row. Dashboards catch up on
    reconnect. One warning line per lost event, no traceback. Inside the lean
    frame route the event is handed to that route, which sends it after the answer.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    stamped = {**event, "sent_at": time.time()}

    async def send_each() -> None:
        for group in [groups] if isinstance(groups, str) else groups:
            await layer.group_send(group, stamped)

    async def send_all() -> None:
        try:
            await asyncio.wait_for(send_each(), SEND_TIMEOUT_SECONDS)
        except Exception as exc:  # any layer failure: the event is best effort
            _lost(event, exc)

    pending = _after_response.get()
    if pending is not None:
        pending.append(send_all)
        return
    try:
        async_to_sync(send_all)()
    except Exception as exc:  # no way to the event loop (e.g. called from inside one)
        _lost(event, exc)


def _lost(event: dict, exc: Exception) -> None:
    logger.warning(
        "Live event %s not sent (channel layer unavailable: %s: %s)",
        event.get("type"),
        type(exc).__name__,
        exc,
    )


def inspection_payload(inspection: Inspection) -> dict:
    """A frame as dashboards and the API show it (the API makes ``image_url`` absolute)."""
    return {
        "id": inspection.pk,
        "station": inspection.station.code,
        "line": inspection.line.code,
        "product": inspection.product.sku if inspection.product_id else None,
        "verdict": inspection.verdict,
        "label": inspection.label,
        "defect_type": inspection.defect_type.code if inspection.defect_type_id else None,
        "defect_severity": inspection.defect_type.severity if inspection.defect_type_id else None,
        "confidence": inspection.confidence,
        "top_k": inspection.top_k,
        "review_status": inspection.review_status,
        "review_reason": inspection.review_reason,
        "source": inspection.source,
        "edge_rechecked": inspection.edge_rechecked,
        "edge_disagreement": inspection.edge_disagreement,
        "model_version": {
            "model": inspection.model_version.model.name,
            "version": inspection.model_version.number,
        },
        "latency_ms": inspection.latency_ms,
        "serial": inspection.serial,
        "lot": inspection.lot,
        "image_url": f"/api/v1/inspections/{inspection.pk}/image/",
        "captured_at": inspection.captured_at.isoformat(),
        "received_at": inspection.received_at.isoformat(),
    }


def inspection_created(inspection: Inspection) -> None:
    payload = inspection_payload(inspection)
    event = {"type": "inspection.created", "inspection": payload}
    groups = [line_group(inspection.line.code)]
    if inspection.review_status == "pending":
        groups.append(REVIEW_GROUP)
    _send(groups, event)


def verification_payload(verification: Verification) -> dict:
    return {
        "id": verification.pk,
        "inspection": verification.inspection_id,
        "inspector": verification.inspector.get_username(),
        "decision": verification.decision,
        "defect_type": verification.defect_type.code if verification.defect_type_id else None,
        "comment": verification.comment,
        "time_spent_ms": verification.time_spent_ms,
        "created_at": verification.created_at.isoformat(),
    }


def inspection_verified(verification: Verification) -> None:
    # One query for everything the payload reads (after commit, so it is the saved state).
    inspection = inspection_queryset().get(pk=verification.inspection_id)
    event = {
        "type": "inspection.verified",
        "inspection": inspection_payload(inspection),
        "verification": verification_payload(verification),
    }
    _send([line_group(inspection.line.code), REVIEW_GROUP], event)


def claim_payload(inspection: Inspection) -> dict:
    return {
        "inspection": inspection.pk,
        "line": inspection.line.code,
        "station": inspection.station.code,
        "by": inspection.claimed_by.get_username() if inspection.claimed_by_id else None,
        "until": inspection.claimed_until.isoformat() if inspection.claimed_until else None,
    }


def review_claimed(inspection: Inspection) -> None:
    """Other queues hide a frame while someone looks at it."""
    _send(REVIEW_GROUP, {"type": "review.claimed", "claim": claim_payload(inspection)})


def review_released(inspection: Inspection, *, released_by: AbstractBaseUser) -> None:
    """The frame is free again; queues show it again (the full frame is in the event)."""
    claim = {**claim_payload(inspection), "by": released_by.get_username()}
    _send(
        REVIEW_GROUP,
        {
            "type": "review.released",
            "claim": claim,
            "inspection": inspection_payload(inspection),
        },
    )


def deployment_changed(station: Station, deployment: Deployment | None) -> None:
    """A station now runs another deployment (or none): workers preload, dashboards update."""
    version = deployment.version if deployment is not None else None
    event = {
        "type": "deployment.changed",
        "station": station.code,
        "line": station.line.code,
        "deployment": deployment.pk if deployment is not None else None,
        "model": version.model.name if version else None,
        "version": version.number if version else None,
    }
    _send([RUNTIME_GROUP, line_group(station.line.code)], event)
