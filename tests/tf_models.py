"""Tiny real TensorFlow models for tests, built in seconds and deterministic.

``colour_classifier`` averages the image's channels and puts a softmax on
them with fixed weights, so its answers are known in advance: a pure red
frame is label 0 with ~1.0 confidence, green label 1, blue label 2, and a
grey frame splits evenly (low confidence). Every test that needs a model
judging frames uses it: real SavedModel, real TFLite, predictable verdicts.
"""

import io
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_LABELS = ("ok", "missing_cap", "crack")


def colour_classifier(
    *, size: int = 32, channels: int = 3, sharpness: float = 30.0, labels=DEFAULT_LABELS
):
    """A Keras model: mean colour → softmax over len(labels) outputs (one per channel, cycled)."""
    import keras
    import numpy as np

    inputs = keras.Input((size, size, channels), name="image")
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(len(labels), activation="softmax", name="scores")
    outputs = dense(pooled)
    model = keras.Model(inputs, outputs)
    weights = np.zeros((channels, len(labels)), dtype="float32")
    for index in range(len(labels)):
        weights[index % channels, index] = sharpness
    dense.set_weights([weights, np.zeros(len(labels), dtype="float32")])
    return model


def export_savedmodel(model, directory: Path) -> Path:
    model.export(str(directory), verbose=False)
    return directory


def savedmodel_zip(model, *, labels=None, nested: str = "") -> bytes:
    """The model exported as a SavedModel and zipped, optionally with labels.txt."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "export"
        export_savedmodel(model, root)
        if labels is not None:
            (root / "labels.txt").write_text("\n".join(labels) + "\n")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(root.rglob("*")):
                archive.write(path, str(Path(nested) / path.relative_to(root)))
        return buffer.getvalue()


def savedmodel_targz(model, *, labels=None) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "export"
        export_savedmodel(model, root)
        if labels is not None:
            (root / "labels.txt").write_text("\n".join(labels) + "\n")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path in sorted(root.rglob("*")):
                archive.add(path, arcname=str(path.relative_to(root)), recursive=False)
        return buffer.getvalue()


def keras_file(model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
