"""Per-process cache of loaded model versions.

One loaded classifier per version per process, loaded and warmed before it
serves its first frame (at start-up, on a deployment change, or — if a frame
is faster than both — by that frame, which then waits for the complete load).
A version re-validated since it was loaded is loaded again; versions no
longer deployed are released. Loading itself is the registry's
(``models_registry.runtime``): the evaluator loads through the same runtime.
"""

import logging
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from common.preprocessing import Frame, Preprocessing, model_input
from models_registry.runtime import (
    Classifier,
    Prediction,
    Runtime,
    RuntimeLoadError,
    configured_runtime,
)

if TYPE_CHECKING:  # the runtime is imported by device-side code too, before any app loads
    from models_registry.models import ModelVersion

logger = logging.getLogger(__name__)

WARMUP_RUNS = 3

__all__ = ["LoadedModel", "ModelCache", "Prediction", "RuntimeLoadError", "model_cache"]


def cache_key(version: "ModelVersion") -> tuple:
    """Changes whenever validation produced new serving artifacts for the version."""
    return (
        version.pk,
        version.serving_runtime,
        version.tflite_sha256,
        version.serving_savedmodel_sha256,
        version.validated_at,
        version.resize_mode,
        version.value_scale,
        version.color_mode,
        version.resize_interpolation,
        version.jpeg_draft,
    )


@dataclass
class LoadedModel:
    version_id: int
    key: tuple
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    classifier: Classifier
    load_ms: float

    @property
    def kind(self) -> str:
        return self.classifier.kind

    def classify(self, frame: Frame) -> Prediction:
        """The version's prediction for ``frame``, preprocessed as the version declares."""
        scores = self.classifier.classify(model_input(frame, self.preprocessing))
        return Prediction(labels=self.labels, scores=scores)


class ModelCache:
    def __init__(self, runtime: Runtime):
        self._runtime = runtime
        self._models: dict[int, LoadedModel] = {}
        self._guard = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}

    def get(self, version: "ModelVersion") -> LoadedModel:
        """The loaded model of ``version``, loading and warming it first if needed."""
        key = cache_key(version)
        model = self._models.get(version.pk)
        if model is not None and model.key == key:
            return model
        with self._guard:
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:  # one load per version; concurrent frames wait for it
            model = self._models.get(version.pk)
            if model is None or model.key != key:
                model = self._load(version, key)
                self._models[version.pk] = model  # published only once warm
        with self._guard:
            self._loading.pop(key, None)
        return model

    def _load(self, version: "ModelVersion", key: tuple) -> LoadedModel:
        started = time.perf_counter()
        if version.status != "ready":
            raise RuntimeLoadError(f"{version} is {version.status}, not ready.")
        preprocessing = Preprocessing.for_version(version)
        classifier = self._runtime.load(version)
        warm_input = np.zeros(
            (1, preprocessing.height, preprocessing.width, preprocessing.channels),
            dtype=np.uint8 if preprocessing.dtype == "uint8" else np.float32,
        )
        for _ in range(WARMUP_RUNS):
            scores = classifier.classify(warm_input)
        if len(scores) != len(version.labels):
            raise RuntimeLoadError(
                f"{version} returns {len(scores)} scores for {len(version.labels)} labels."
            )
        load_ms = (time.perf_counter() - started) * 1000
        logger.info("Loaded %s (%s) in %.0f ms", version, classifier.kind, load_ms)
        return LoadedModel(
            version_id=version.pk,
            key=key,
            labels=tuple(version.labels),
            preprocessing=preprocessing,
            classifier=classifier,
            load_ms=load_ms,
        )

    def release_except(self, keep: set[int]) -> list[int]:
        """Drop versions not in ``keep``; a frame still using one finishes with it."""
        with self._guard:
            released = [pk for pk in self._models if pk not in keep]
            for pk in released:
                del self._models[pk]
        for pk in released:
            logger.info("Released model version %s", pk)
        return released

    def loaded_version_ids(self) -> set[int]:
        return set(self._models)


@cache
def model_cache() -> ModelCache:
    """This process's cache, over the runtime named in settings."""
    return ModelCache(configured_runtime())
