"""Train the demo model: a small CNN fitted from scratch on generated frames.

The model takes a float32 RGB image in 0..1, stretched to a square input, and
returns softmax scores over ``frames.CLASSES``, the platform's default
preprocessing, so it registers like any user's model. The held-out accuracy is
measured on frames from another seed, rendered at the stations' 640x480, sent
through JPEG and scaled down the way a server does (Pillow's draft, then a
bilinear resize), so the figure is the one the demo lines will see.

Command line::

    python -m demo.training --out var/demo/model
"""

import argparse
import io
import logging
import os
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common.preprocessing import Preprocessing, model_input, open_frame
from demo.frames import CLASSES, FRAME_SIZE, frame_rng, render_arrays, render_frame

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INPUT_SIZE = 96
# Pillow's JPEG draft decodes a 640x480 frame at 1/4 scale for a 96-pixel
# input; training frames are drawn at that size so they look like served ones.
RENDER_SIZE = (160, 120)
FRAME_PIXEL_LIMIT = FRAME_SIZE[0] * FRAME_SIZE[1]
TRAIN_SEED = 20260101
HOLDOUT_SEED = 20269999
ARTIFACT_NAME = "yogurt-bottle.zip"


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced and what it cost."""

    zip_path: Path
    accuracy: float
    holdout_frames: int
    train_frames: int
    epochs: int
    generation_seconds: float
    training_seconds: float
    evaluation_seconds: float
    total_seconds: float

    def summary(self) -> str:
        return (
            f"held-out accuracy {self.accuracy:.2%} on {self.holdout_frames} unseen frames; "
            f"data {self.generation_seconds:.1f} s, training {self.training_seconds:.1f} s, "
            f"evaluation and export {self.evaluation_seconds:.1f} s, "
            f"total {self.total_seconds:.1f} s"
        )


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_threads(threads: int) -> None:
    """One pool of ``threads`` for TensorFlow's ops; ignored once TF has started.

    Ops run one at a time (inter-op 1), each on every core: a small CNN has no
    parallel branches, and two ops each wanting all cores would oversubscribe.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already ran something in this process; keep its settings


def build_model(input_size: int = INPUT_SIZE, classes: int = len(CLASSES)):
    """A five-convolution network, small enough to train on two cores in about a minute."""
    import keras
    from keras import layers

    def block(x, filters: int, strides: int = 1):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = block(inputs, 16, strides=2)
    x = block(x, 32, strides=2)
    x = block(x, 48)
    x = layers.MaxPooling2D()(x)
    x = block(x, 64)
    x = layers.MaxPooling2D()(x)
    x = block(x, 96)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="yogurt_bottle")


def station_preprocess(jpeg: bytes, input_size: int = INPUT_SIZE) -> np.ndarray:
    """A frame as the server feeds it: the serving preprocessing, kept as uint8 pixels."""
    # The demo version allows the fast path (seed_demo uploads it with jpeg_draft=True).
    prep = Preprocessing(
        height=input_size, width=input_size, channels=3, dtype="uint8", jpeg_draft=True
    )
    return model_input(open_frame(jpeg, max_pixels=FRAME_PIXEL_LIMIT), prep)[0]


def holdout_arrays(
    per_class: int, seed: int, input_size: int = INPUT_SIZE, quality: int = 88
) -> tuple[np.ndarray, np.ndarray]:
    """Unseen frames the way stations send them: 640x480 JPEG, then preprocessed."""
    images, labels = [], []
    for number in range(per_class):
        for class_index, label in enumerate(CLASSES):
            frame = render_frame(label, frame_rng(seed, class_index, number), FRAME_SIZE)
            buffer = io.BytesIO()
            frame.save(buffer, "JPEG", quality=quality)
            images.append(station_preprocess(buffer.getvalue(), input_size))
            labels.append(class_index)
    return np.stack(images), np.asarray(labels)


def pack_artifact(export_dir: Path, zip_path: Path, labels=CLASSES) -> Path:
    """Zip a SavedModel directory with its labels.txt, the way users upload models."""
    (export_dir / "labels.txt").write_text("\n".join(labels) + "\n")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(export_dir.rglob("*")):
            archive.write(path, path.relative_to(export_dir).as_posix())
    partial.replace(zip_path)
    return zip_path


def _fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    input_size: int,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    verbose: bool,
):
    """The compact CNN fitted on uint8 frames with a warm-up then cosine learning rate."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model(input_size)
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=3e-3, warmup_steps=max(1, steps // 10)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    import tensorflow as tf

    # Frames stay uint8 in memory; each batch is scaled to 0..1 as it is used.
    batches = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        .prefetch(2)
    )
    model.fit(batches, epochs=epochs, shuffle=False, verbose=2 if verbose else 0)
    return model


def _export(model, zip_path: Path) -> Path:
    """Export the model as an inference SavedModel and zip it with its labels."""
    with tempfile.TemporaryDirectory(prefix="demo-export-") as tmp:
        export_dir = Path(tmp) / "savedmodel"
        tf_logger = logging.getLogger("tensorflow")
        level = tf_logger.level
        tf_logger.setLevel(logging.WARNING)  # not "Assets written to <a temporary folder>"
        try:
            model.export(str(export_dir), verbose=False)
        finally:
            tf_logger.setLevel(level)
        return pack_artifact(export_dir, zip_path)


def train_demo_model(
    out_dir: Path | str,
    *,
    train_per_class: int = 500,
    holdout_per_class: int = 60,
    epochs: int = 5,
    batch_size: int = 32,
    seed: int = TRAIN_SEED,
    holdout_seed: int = HOLDOUT_SEED,
    input_size: int = INPUT_SIZE,
    threads: int | None = None,
    verbose: bool = False,
) -> TrainingResult:
    """Generate frames, train, measure held-out accuracy, export; returns the zip and figures.

    ``out_dir`` receives ``yogurt-bottle.zip`` (the SavedModel and labels.txt).
    """
    if holdout_seed == seed:
        raise ValueError("The held-out seed must differ from the training seed.")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    x_train, y_train = render_arrays(
        train_per_class, seed, render_size=RENDER_SIZE, input_size=(input_size, input_size)
    )
    generated = time.perf_counter()

    configure_threads(threads or available_cores())
    model = _fit(
        x_train,
        y_train,
        input_size,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        verbose=verbose,
    )
    trained = time.perf_counter()

    x_holdout, y_holdout = holdout_arrays(holdout_per_class, holdout_seed, input_size)
    scores = model.predict(x_holdout.astype(np.float32) / 255.0, batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(scores, axis=1) == y_holdout))
    zip_path = _export(model, out_dir / ARTIFACT_NAME)
    finished = time.perf_counter()
    return TrainingResult(
        zip_path=zip_path,
        accuracy=accuracy,
        holdout_frames=len(y_holdout),
        train_frames=len(y_train),
        epochs=epochs,
        generation_seconds=generated - started,
        training_seconds=trained - generated,
        evaluation_seconds=finished - trained,
        total_seconds=finished - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for yogurt-bottle.zip")
    parser.add_argument("--per-class", type=int, default=500, help="training frames per class")
    parser.add_argument("--holdout-per-class", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--threads", type=int, help="TensorFlow threads (default: the cores)")
    parser.add_argument("--verbose", action="store_true", help="print each epoch")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = train_demo_model(
        args.out,
        train_per_class=args.per_class,
        holdout_per_class=args.holdout_per_class,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        threads=args.threads,
        verbose=args.verbose,
    )
    if args.json:
        import json

        print(json.dumps({**asdict(result), "zip_path": str(result.zip_path)}, indent=2))
    else:
        print(f"{result.zip_path}: {result.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
