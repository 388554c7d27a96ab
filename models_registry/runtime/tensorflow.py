"""TensorFlow runtime: TFLite through LiteRT when validation found it faithful, else the SavedModel.

LiteRT is imported on first use; TensorFlow itself only when a version must
be served from its SavedModel, so a worker that only serves TFLite stays small.
Each classifier uses ``LINESIGHT["INFERENCE_THREADS"]`` threads (1 by default)
so several worker processes share the cores instead of fighting for them.
"""

import hashlib
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.db.models.fields.files import FieldFile

from models_registry.runtime.base import Classifier, RuntimeLoadError, softmax

if TYPE_CHECKING:
    from models_registry.models import ModelVersion

_tf_configured = False
_tf_lock = threading.Lock()


def _threads() -> int:
    return max(1, settings.LINESIGHT["INFERENCE_THREADS"])


class TFLiteClassifier:
    kind = "tflite"

    def __init__(self, model_bytes: bytes, *, apply_softmax: bool):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=model_bytes, num_threads=_threads())
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._apply_softmax = apply_softmax
        self._lock = threading.Lock()  # an interpreter is not re-entrant

    def classify(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], batch.astype(self._input["dtype"]))
            self._interpreter.invoke()
            scores = self._interpreter.get_tensor(self._output["index"])[0].astype(np.float32)
        return softmax(scores) if self._apply_softmax else scores

    def close(self) -> None:
        self._interpreter = None


class SavedModelClassifier:
    kind = "savedmodel"

    def __init__(self, directory: Path, *, signature: str, output: str, apply_softmax: bool):
        tf = _tensorflow()
        try:
            self._model = tf.saved_model.load(str(directory))
            self._function = self._model.signatures[signature or "serving_default"]
        except Exception as exc:
            raise RuntimeLoadError(f"The SavedModel did not load: {exc}") from exc
        self._output = output
        self._apply_softmax = apply_softmax
        self._tf = tf

    def classify(self, batch: np.ndarray) -> np.ndarray:
        outputs = self._function(self._tf.constant(batch))
        tensor = outputs[self._output] if self._output in outputs else next(iter(outputs.values()))
        scores = tensor.numpy()[0].astype(np.float32)
        return softmax(scores) if self._apply_softmax else scores

    def close(self) -> None:
        self._model = None
        self._function = None


def _tensorflow() -> ModuleType:
    """Import TensorFlow once, with thread pools sized for several worker processes."""
    global _tf_configured
    import tensorflow as tf

    with _tf_lock:
        if not _tf_configured:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(_threads())
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass  # TensorFlow was already initialised in this process
            _tf_configured = True
    return tf


def _read(field: FieldFile) -> bytes:
    with field.storage.open(field.name, "rb") as handle:
        return handle.read()


def _unpacked_savedmodel(version: "ModelVersion") -> Path:
    """The version's serving SavedModel, unpacked once into this machine's model cache."""
    cache = Path(settings.LINESIGHT["MODEL_CACHE_DIR"])
    target = cache / f"v{version.pk}-{version.serving_savedmodel_sha256 or 'unverified'}"
    if (target / "saved_model.pb").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    data = _read(version.serving_savedmodel)
    expected = version.serving_savedmodel_sha256
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise RuntimeLoadError(f"The stored SavedModel of {version} does not match its checksum.")
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=".unpack-"))
    try:
        archive_path = staging / "model.zip"
        archive_path.write_bytes(data)
        # Written by validation after its own safe extraction, so its layout is known;
        # still refuse any entry that would land outside the folder.
        with zipfile.ZipFile(archive_path) as archive:
            root = (staging / "model").resolve()
            for member in archive.infolist():
                if not (root / member.filename).resolve().is_relative_to(root):
                    raise RuntimeLoadError(f"Unsafe entry {member.filename!r} in {version}.")
            archive.extractall(root)
        (staging / "model").rename(target)
    except FileExistsError:
        pass  # another process unpacked it first
    except OSError as exc:
        if not (target / "saved_model.pb").exists():
            raise RuntimeLoadError(f"Could not unpack the SavedModel of {version}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class TensorFlowRuntime:
    """Serves what validation chose for the version: TFLite or SavedModel."""

    def load(self, version: "ModelVersion") -> Classifier:
        apply_softmax = not version.outputs_probabilities
        if version.serving_runtime == "tflite" and version.tflite_artifact:
            data = _read(version.tflite_artifact)
            if version.tflite_sha256 and hashlib.sha256(data).hexdigest() != version.tflite_sha256:
                raise RuntimeLoadError(
                    f"The stored TFLite file of {version} does not match its checksum."
                )
            try:
                return TFLiteClassifier(data, apply_softmax=apply_softmax)
            except (ValueError, RuntimeError) as exc:
                raise RuntimeLoadError(
                    f"The TFLite model of {version} did not load: {exc}"
                ) from exc
        if not version.serving_savedmodel:
            raise RuntimeLoadError(f"{version} has no serving artifact; validate it again.")
        return SavedModelClassifier(
            _unpacked_savedmodel(version),
            signature=version.signature_name,
            output=version.output_name,
            apply_softmax=apply_softmax,
        )
