"""A reference line device: posts frames, or runs the station's model itself (edge mode).

Used by ``manage.py simulate_station`` and the demo; it talks to the server
only over HTTP, as a real device would.
"""

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

from common.preprocessing import Preprocessing, model_input, open_frame
from models_registry.runtime.base import softmax

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# A frame is sent again on a timeout, a lost connection or a 5xx, with the
# same idempotency key, so the server stores it once however often it arrives.
RETRIES = 5
MAX_BACKOFF_SECONDS = 10.0


def image_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


class DeviceError(RuntimeError):
    pass


@dataclass
class EdgeModel:
    """The station's model as downloaded from its manifest, run with LiteRT."""

    model_version: str
    labels: list[str]
    preprocessing: Preprocessing
    apply_softmax: bool
    interpreter: object

    def predict(self, data: bytes, top: int = 3) -> dict:
        frame = open_frame(data, max_pixels=100_000_000)
        batch = model_input(frame, self.preprocessing)
        details_in = self.interpreter.get_input_details()[0]
        details_out = self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(details_in["index"], batch.astype(details_in["dtype"]))
        self.interpreter.invoke()
        scores = self.interpreter.get_tensor(details_out["index"])[0].astype(np.float32)
        if self.apply_softmax:
            scores = softmax(scores)
        ranked = np.argsort(-scores)[:top]
        return {
            "label": self.labels[ranked[0]],
            "confidence": f"{float(scores[ranked[0]]):.6f}",
            "top_k": json.dumps(
                [
                    {"label": self.labels[i], "confidence": round(float(scores[i]), 6)}
                    for i in ranked
                ]
            ),
            "model_version": self.model_version,
        }


class Device:
    def __init__(
        self,
        *,
        url: str,
        station: str,
        token: str,
        product: str | None = None,
        retries: int = RETRIES,
        backoff: float = 0.5,
    ):
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.station = station
        self.product = product
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.edge_model: EdgeModel | None = None

    def load_edge_model(self) -> EdgeModel:
        """Fetch the manifest, download the TFLite file and check its checksum."""
        from ai_edge_litert.interpreter import Interpreter

        params = {"product": self.product} if self.product else None
        response = self.session.get(
            f"{self.url}/api/v1/stations/{self.station}/model/", params=params, timeout=30
        )
        if response.status_code != 200:
            raise DeviceError(f"Manifest: HTTP {response.status_code}: {response.text[:200]}")
        manifest = response.json()
        artifact = manifest["artifacts"]["tflite"]
        if artifact is None:
            raise DeviceError(
                f"{manifest['model_version']} has no TFLite form; edge mode needs one."
            )
        data = self.session.get(artifact["url"], timeout=120).content
        if hashlib.sha256(data).hexdigest() != artifact["sha256"]:
            raise DeviceError("The downloaded model does not match the manifest's checksum.")
        interpreter = Interpreter(model_content=data, num_threads=1)
        interpreter.allocate_tensors()
        self.edge_model = EdgeModel(
            model_version=manifest["model_version"],
            labels=[
                entry["label"] for entry in sorted(manifest["labels"], key=lambda e: e["index"])
            ],
            preprocessing=Preprocessing.from_dict(manifest["preprocessing"]),
            apply_softmax=not manifest["outputs_probabilities"],
            interpreter=interpreter,
        )
        logger.info("Edge model %s loaded", self.edge_model.model_version)
        return self.edge_model

    def post(
        self,
        path: Path,
        *,
        serial: str = "",
        lot: str = "",
        edge: bool = False,
        key: str | None = None,
    ) -> requests.Response:
        """Send one frame (with a new idempotency key unless ``key`` is given); see ``_send``."""
        data = path.read_bytes()
        key = key or uuid.uuid4().hex
        fields = {"station": self.station, "serial": serial, "lot": lot}
        if self.product:
            fields["product"] = self.product
        if edge:
            model = self.edge_model or self.load_edge_model()
            fields.update(model.predict(data))
        content_type = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
        response = self._send(fields, (path.name, data, content_type), key)
        if edge and response.status_code == 409 and "current model" in response.text:
            # The station was switched to another version: fetch it and send again.
            self.load_edge_model()
            return self.post(path, serial=serial, lot=lot, edge=True, key=key)
        return response

    def _send(self, fields: dict, image: tuple, key: str) -> requests.Response:
        """POST a frame; on a timeout, lost connection, 429 or 5xx, again with the same key.

        Waits as a 503's or 429's ``Retry-After`` says, otherwise a doubling backoff. A
        retry of a frame the server did store is answered 200 with that frame.
        The last error or 5xx is returned (or raised) when retries run out.
        """
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.session.post(
                    f"{self.url}/api/v1/inspections/",
                    data=fields,
                    files={"image": image},
                    headers={"Idempotency-Key": key},
                    timeout=30,
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                if last:
                    raise
                logger.warning("Frame %s: %s; sending it again", key, exc)
                time.sleep(self._backoff(attempt, None))
                continue
            # 429: over the station's rate, nothing stored; like a 503, wait and resend.
            if (response.status_code < 500 and response.status_code != 429) or last:
                return response
            logger.warning("Frame %s: HTTP %s; sending it again", key, response.status_code)
            time.sleep(self._backoff(attempt, response.headers.get("Retry-After")))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), MAX_BACKOFF_SECONDS)
        return min(self.backoff * 2**attempt, MAX_BACKOFF_SECONDS)
