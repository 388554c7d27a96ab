"""The runtime interface: load a model version, classify a prepared frame.

A runtime is chosen in settings (``LINESIGHT["RUNTIME"]``, a dotted path) and
resolved once per process. Another runtime (ONNX, a remote accelerator...)
implements these two methods and nothing else changes.
"""

from typing import Protocol

import numpy as np


class Classifier(Protocol):
    """A loaded, warmed model version; ``classify`` returns one probability per label."""

    kind: str  # "tflite" or "savedmodel": what actually serves

    def classify(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class Runtime(Protocol):
    def load(self, version) -> Classifier:
        """Load ``version``'s serving artifact and warm it; raise RuntimeLoadError on failure."""
        ...


class RuntimeLoadError(RuntimeError):
    """A version's serving artifact could not be loaded in this process."""


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
