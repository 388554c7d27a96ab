"""Which topics an outbox event goes to, and what is published there.

Station events go under ``{prefix}/{plant}/{line}/{station}/``:

- ``inspections``: every judged frame (``inspection.judged``)
- ``reject``: the judged frames whose verdict is ``fail``, for a PLC to divert the part
- ``verifications``: every inspector decision (``inspection.verified``)
- ``deployments``: the station serves another model version, or none (``deployment.changed``)
- ``state`` (retained): the station's last verdict, model version and time

Finished jobs go to ``{prefix}/jobs/{kind}`` (three levels, so no station
topic can collide with it). Every payload is the outbox envelope
(``common.outbox``); ``state`` is an envelope of type ``station.state`` that
carries the id of the event that changed it.
"""

import json
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder

from common.outbox import DEPLOYMENT_CHANGED, INSPECTION_JUDGED, INSPECTION_VERIFIED, JOB_FINISHED

STATION_STATE = "station.state"


@dataclass(frozen=True)
class Publication:
    topic: str
    payload: bytes
    retain: bool = False


def _encode(envelope: dict) -> bytes:
    return json.dumps(envelope, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def station_base(prefix: str, envelope: dict) -> str:
    return f"{prefix}/{envelope['plant']}/{envelope['line']}/{envelope['station']}"


def state_envelope(envelope: dict) -> dict:
    """The retained state a new frame or deployment leaves the station in."""
    data = envelope["data"]
    if envelope["type"] == INSPECTION_JUDGED:
        state = {
            "verdict": data["verdict"],
            "label": data["label"],
            "defect_type": data["defect_type"],
            "confidence": data["confidence"],
            "inspection": data["id"],
            "product": data["product"],
            "model_version": data["model_version"],
        }
    else:  # a deployment change: no verdict yet from what the station serves now
        state = {
            "verdict": None,
            "label": None,
            "defect_type": None,
            "confidence": None,
            "inspection": None,
            "product": data["product"],
            "model_version": data["model_version"],
        }
    state["at"] = envelope["occurred_at"]
    state["changed_by"] = envelope["type"]
    return {**envelope, "type": STATION_STATE, "data": state}


def publications_for(envelope: dict, *, prefix: str) -> list[Publication]:
    """What one outbox message becomes on the broker, in publishing order."""
    kind = envelope["type"]
    body = _encode(envelope)
    if kind == JOB_FINISHED:
        return [Publication(f"{prefix}/jobs/{envelope['data']['kind']}", body)]
    base = station_base(prefix, envelope)
    if kind == INSPECTION_JUDGED:
        publications = []
        if envelope["data"]["verdict"] == "fail":
            publications.append(Publication(f"{base}/reject", body))
        publications.append(Publication(f"{base}/inspections", body))
        publications.append(Publication(f"{base}/state", _encode(state_envelope(envelope)), True))
        return publications
    if kind == INSPECTION_VERIFIED:
        return [Publication(f"{base}/verifications", body)]
    if kind == DEPLOYMENT_CHANGED:
        return [
            Publication(f"{base}/deployments", body),
            Publication(f"{base}/state", _encode(state_envelope(envelope)), True),
        ]
    raise ValueError(f"No MQTT topic for event type {kind!r}")
