"""Hostile and broken artifacts for validation tests, built here in seconds.

Archives are made byte by byte with zipfile/tarfile so each one breaks
exactly one rule. Models are real SavedModels written by
``tf.saved_model.save`` from a ``tf.Module`` whose serving function does the
one thing validation must catch (read a file, loop forever, allocate too
much...), around an otherwise sensible colour classifier.
"""

import io
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE = 32
LABELS = ("ok", "missing_cap", "crack")


# --- archives ----------------------------------------------------------------


def zip_bytes(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_with_symlink(name: str = "variables", target: str = "/etc") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("saved_model.pb", b"\x08\x01")
        link = zipfile.ZipInfo(name)
        link.create_system = 3  # Unix, so the mode bits below count
        link.external_attr = (0o120777 << 16) | 0x20
        archive.writestr(link, target)
    return buffer.getvalue()


def zip_bomb(*, unpacked_bytes: int) -> bytes:
    """One file of zeros: compresses about 1000:1."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("variables/variables.data-00000-of-00001", "w", force_zip64=True) as f:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(unpacked_bytes // len(chunk)):
                f.write(chunk)
        archive.writestr("saved_model.pb", b"\x08\x01")
    return buffer.getvalue()


def targz_bytes(add: Callable[[tarfile.TarFile], None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        add(archive)
    return buffer.getvalue()


def tar_add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def tar_add_link(archive: tarfile.TarFile, name: str, target: str, *, hard: bool) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    archive.addfile(info)


def tar_add_device(archive: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3  # /dev/null
    archive.addfile(info)


# --- SavedModels with a bad serving path ----------------------------------------


def _scores(tf, image):
    """The colour classifier's answer: softmax over the mean colour, sharpened."""
    return tf.nn.softmax(30.0 * tf.reduce_mean(image, axis=[1, 2]))


def _saved_module(serve_body, *, input_shape=(None, SIZE, SIZE, 3), dtype="float32") -> bytes:
    """Zip of a SavedModel whose serving_default runs ``serve_body(tf, image)``, with labels.txt."""
    import tensorflow as tf

    class Served(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(input_shape, dtype, name="image")])
        def serve(self, image):
            return {"scores": serve_body(tf, image)}

    module = Served()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "model"
        tf.saved_model.save(module, str(root), signatures={"serving_default": module.serve})
        (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(root.rglob("*")):
                archive.write(path, str(path.relative_to(root)))
        return buffer.getvalue()


def file_reading_and_writing_model(target: str) -> bytes:
    """Reads /etc/hostname and writes ``target`` on every frame."""

    def body(tf, image):
        secret = tf.io.read_file("/etc/hostname")
        tf.io.write_file(target, secret)
        leak = tf.cast(tf.strings.length(secret), tf.float32) * 0.0
        return _scores(tf, image) + leak

    return _saved_module(body)


def hanging_model() -> bytes:
    """Loops forever on the serving path: the loop's condition never turns false."""

    def body(tf, image):
        never_done = tf.reduce_max(image) > -1.0
        count = tf.while_loop(
            lambda i: never_done, lambda i: i + 1, [tf.constant(0, tf.int64)], parallel_iterations=1
        )[0]
        return _scores(tf, image) + tf.cast(count, tf.float32) * 0.0

    return _saved_module(body)


def memory_hungry_model(gigabytes: float = 6.0) -> bytes:
    """Allocates ``gigabytes`` per frame; the size depends on the input so nothing folds it away."""

    def body(tf, image):
        count = tf.cast(tf.reduce_max(image) * 0.0 + gigabytes * 2**28, tf.int64)
        big = tf.fill(tf.reshape(count, [1]), 1.0)
        return _scores(tf, image) + tf.reduce_min(big) * 0.0

    return _saved_module(body)


def non_image_model() -> bytes:
    """A tabular model: rank-2 input of 10 features."""

    def body(tf, features):
        return tf.nn.softmax(features[:, :3])

    return _saved_module(body, input_shape=(None, 10))


def noisy_model() -> bytes:
    """Adds fresh random noise to every answer, so no two runtimes agree (TFLite parity fails)."""

    def body(tf, image):
        noise = tf.random.uniform(tf.shape(image)[:1], maxval=0.5)
        logits = 30.0 * tf.reduce_mean(image, axis=[1, 2])
        return tf.nn.softmax(logits + tf.stack([noise, -noise, noise * 0.0], axis=1) * 10.0)

    return _saved_module(body)


def garbage_savedmodel() -> bytes:
    """A zip shaped like a SavedModel whose saved_model.pb is random bytes."""
    noise = bytes((i * 7919 + 13) % 251 for i in range(4096))
    return zip_bytes(
        {
            "saved_model.pb": b"\xff\xff\xff\xff" + noise,
            "variables/variables.index": b"",
            "labels.txt": "\n".join(LABELS).encode(),
        }
    )


# --- Keras ----------------------------------------------------------------------


def lambda_keras_file() -> bytes:
    """A .keras file whose model doubles its input in a Lambda layer (Python bytecode)."""
    import keras

    from tests.tf_models import keras_file

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    doubled = keras.layers.Lambda(lambda x: x * 2.0, name="double")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(doubled)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax")(pooled)
    return keras_file(keras.Model(inputs, outputs))


def keras_metadata_with_lambda() -> bytes:
    """keras_metadata.pb as tf.keras wrote it: SavedMetadata{nodes: [SavedObject{metadata}]}."""
    metadata = b'{"class_name": "Lambda", "config": {"name": "double"}}'

    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    saved_object = field(3, b"root.layer-1") + field(4, b"_tf_keras_layer") + field(5, metadata)
    return field(1, saved_object)
