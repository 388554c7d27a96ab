"""The runtime interface: load a model version, classify a prepared frame.

A runtime is chosen in settings (``LINESIGHT["RUNTIME"]``, a dotted path) and
resolved once per process (``models_registry.runtime.configured_runtime``).
Another runtime (ONNX, a remote accelerator...) implements these two methods
and nothing else changes. Serving reads a frame's result as a ``Prediction``
(``inspection.runtime.LoadedModel.classify``).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from models_registry.models import ModelVersion


@dataclass(frozen=True)
class Prediction:
    """What a version says about one frame: one probability per label, in output order."""

    labels: tuple[str, ...]
    scores: np.ndarray


class Classifier(Protocol):
    """A loaded, warmed model version; ``classify`` returns one probability per label."""

    kind: str  # "tflite" or "savedmodel": what actually serves

    def classify(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class Runtime(Protocol):
    def load(self, version: "ModelVersion") -> Classifier:
        """Load ``version``'s serving artifact and warm it; raise RuntimeLoadError on failure."""
        ...


class RuntimeLoadError(RuntimeError):
    """A version's serving artifact could not be loaded in this process."""


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
