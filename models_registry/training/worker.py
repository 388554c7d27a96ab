"""The training process: learns a compact CNN from prepared arrays and exports a SavedModel.

    python -P -m models_registry.training.worker REQUEST_JSON

Runs apart from the task worker, under the validation sandbox's limits
(address space, file size, CPU time, death with its parent) and at a lower
CPU priority, so frames and validations keep their latency while it trains.
The worker prepared the images through common.preprocessing (the version's
own preprocessing) into uint8 arrays; this process only learns from them.
It reports one JSON line per event on stdout (``{"event": "epoch", ...}``)
and writes ``result.json`` and ``savedmodel/`` in its output folder.
Imports neither Django nor, until the limits are set, TensorFlow.
"""

import json
import math
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models_registry.evaluation.metrics import classification_metrics
from models_registry.validation.sandbox import import_tensorflow, limit_resources

FLIP_MODES = {"horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical"}
MAX_CHANNELS = 128
# Keras' default (0.99) leaves the moving statistics near their start after the few
# hundred steps a small dataset gives, and the exported model then predicts one class.
BN_MOMENTUM = 0.9
# Early stopping waits this long: batch statistics settle over the first epochs, and
# validation scores jump about until they do.
MIN_EPOCHS_BEFORE_STOP = 12
COSINE_FLOOR = 0.02  # the last epochs learn at 2 % of the initial rate
# How often each label is drawn for an epoch: in proportion to its count to this power.
SAMPLING_POWER = {"shuffle": 1.0, "sqrt": 0.5, "balanced": 0.0}


@dataclass
class TrainingRequest:
    """What the worker asks of the training process (limits as the sandbox's request names them)."""

    data_dir: str
    out_dir: str
    settings: dict = field(default_factory=dict)
    labels: list = field(default_factory=list)
    threads: int = 2
    nice: int = 10
    memory_mb: int = 8192
    max_file_bytes: int = 2 * 1024**3
    timeout_seconds: int = 3600
    parent_pid: int = 0
    base_path: str = ""  # a .keras base whose convolutional part is reused (fine-tuning)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> "TrainingRequest":
        return cls(**json.loads(path.read_text()))


def emit(event: str, **fields: Any) -> None:
    """One line the worker reads as it comes (progress, history, the result)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def cpu_seconds() -> float:
    """CPU time of this process (all its threads), user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 1)


def build_model(keras: Any, *, size: int, channels: int, classes: int, settings: dict) -> Any:
    """A compact CNN: a strided stem, conv blocks halving the size, pooled (by average, and
    by maximum with ``pooling`` "avg_max"), one dense head.

    It takes uint8 pixels and scales them itself, so serving feeds it exactly
    what common.preprocessing gives for the version's declared 0..255 scale.
    """
    layers = keras.layers
    inputs = keras.Input((size, size, channels), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    filters = settings["width"]
    x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    spatial = (size + 1) // 2
    while spatial > 4:
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
        x = layers.MaxPooling2D()(x)
        spatial //= 2
        filters = min(filters * 2, MAX_CHANNELS)
    if settings.get("pooling", "avg") == "avg_max":
        # A small defect (a blowhole, a crack's end) lights up a few positions: the maximum
        # keeps it, the average over the whole part would wash it out.
        x = layers.Concatenate()(
            [layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)]
        )
    else:
        x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(settings["dropout"], seed=settings["seed"])(x)
    outputs = layers.Dense(classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs)


def scaled_for_base(keras: Any, inputs: Any, settings: dict) -> Any:
    """uint8 pixels as the base version declared its input (its value scale and dtype)."""
    if settings["base_input_dtype"] == "uint8":
        return inputs
    scale = settings["base_value_scale"]
    if scale == "-1_1":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    return keras.layers.Rescaling(1.0 if scale == "0_255" else 1.0 / 255.0)(inputs)


def build_finetune_model(keras: Any, *, base_path: str, classes: int, settings: dict) -> Any:
    """The base's convolutional part (up to its last feature map) with a new head.

    The base is loaded in safe mode (no Lambda layers, no custom code); it
    takes the scale it was trained on, and the whole takes uint8 pixels like
    the default recipe's model.
    """
    base = keras.saving.load_model(base_path, compile=False, safe_mode=True)
    maps = [layer for layer in base.layers if len(layer.output.shape) == 4]
    features = keras.Model(base.inputs, maps[-1].output, name="base_features")
    _, height, width, channels = base.inputs[0].shape
    inputs = keras.Input((height, width, channels), dtype="uint8", name="image")
    x = features(scaled_for_base(keras, inputs, settings))
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(settings["dropout"], seed=settings["seed"])(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs)


def augmenter(keras: Any, settings: dict) -> Any:
    """Flips, small rotations and shifts, brightness and contrast, as the settings say."""
    layers, seed = keras.layers, settings["seed"]
    steps = []
    if settings["flip"] != "none":
        steps.append(layers.RandomFlip(FLIP_MODES[settings["flip"]], seed=seed))
    if settings["rotation"]:
        steps.append(layers.RandomRotation(settings["rotation"], fill_mode="reflect", seed=seed))
    if settings["shift"]:
        shift = settings["shift"]
        steps.append(layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed))
    if settings["brightness"]:
        steps.append(
            layers.RandomBrightness(settings["brightness"], value_range=(0, 255), seed=seed)
        )
    if settings["contrast"]:
        steps.append(layers.RandomContrast(settings["contrast"], seed=seed))
    return keras.Sequential(steps) if steps else None


def sampled_indices(tf: Any, train_y: np.ndarray, settings: dict) -> Any:
    """Train image indices for one epoch (as many as the train split holds): shuffled, or
    each label drawn with probability proportional to its count to a power (0: every label
    equally often, 0.5: rare labels more often without repeating them endlessly), so a rare
    defect is seen in most batches instead of a few times an epoch."""
    seed, count = settings["seed"], len(train_y)
    power = SAMPLING_POWER[settings.get("sampling", "shuffle")]
    if power == 1.0:
        indices = tf.data.Dataset.range(count)
        return indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    classes = np.unique(train_y)
    members = [np.flatnonzero(train_y == label) for label in classes]
    weights = np.array([len(group) ** power for group in members], dtype=np.float64)
    per_label = [
        tf.data.Dataset.from_tensor_slices(group.astype(np.int64))
        .shuffle(len(group), seed=seed + i, reshuffle_each_iteration=True)
        .repeat()
        for i, group in enumerate(members)
    ]
    mixed = tf.data.Dataset.sample_from_datasets(
        per_label, weights=list(weights / weights.sum()), seed=seed
    )
    return mixed.take(count)


def datasets(tf: Any, keras: Any, data: dict, settings: dict) -> tuple[Any, Any]:
    batch = settings["batch_size"]
    augment = augmenter(keras, settings)
    images, truth = tf.constant(data["train_x"]), tf.constant(data["train_y"])
    train = sampled_indices(tf, data["train_y"], settings).batch(batch)

    def gather(chosen: Any) -> tuple[Any, Any]:
        return tf.gather(images, chosen), tf.gather(truth, chosen)

    train = train.map(gather)
    if augment is not None:

        def apply(images: Any, labels: Any) -> tuple[Any, Any]:
            moved = augment(tf.cast(images, "float32"), training=True)
            return tf.cast(tf.clip_by_value(tf.round(moved), 0.0, 255.0), "uint8"), labels

        train = train.map(apply, num_parallel_calls=1)
    validation = tf.data.Dataset.from_tensor_slices(data["val_x"]).batch(batch)
    return train.prefetch(2), validation.prefetch(2)


class Progress:
    """Keras callback: validation macro-F1 each epoch, best weights, early and budget stops."""

    def __init__(self, *, model, validation, val_y, settings, labels):
        self.model, self.validation, self.val_y = model, validation, val_y
        self.settings, self.labels = settings, labels
        self.best_f1, self.best_loss, self.best_epoch, self.best_weights = -1.0, None, 0, None
        self.best_smoothed, self.scores = -1.0, []
        self.started = time.monotonic()
        self.stopped_because = "all epochs ran"
        self.stop = False

    def epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Cosine decay over the run's expected length: its epochs or its time budget,
        whichever ends first, so a run the budget cuts short still ends on a low rate."""
        if self.settings["lr_schedule"] != "cosine":
            return
        elapsed = time.monotonic() - self.started
        done = max(epoch / self.settings["epochs"], elapsed / self.settings["time_budget_seconds"])
        factor = COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * min(done, 1)))
        self.model.optimizer.learning_rate.assign(self.settings["learning_rate"] * factor)

    def epoch_end(self, epoch: int, logs: dict) -> None:
        scores = self.model.predict(self.validation, verbose=0)
        predicted = scores.argmax(axis=1)
        # The evaluation's own figure, so "best epoch" means what the evaluation reports.
        f1 = classification_metrics(self.val_y, predicted, self.labels)["macro_f1"]
        picked = scores[np.arange(len(self.val_y)), self.val_y]
        val_loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
        val_accuracy = float(np.mean(predicted == self.val_y))
        self.scores.append(f1)
        # With a handful of validation images of a rare defect one epoch's figure jumps by
        # luck: plan.py then asks for the mean over the last few epochs.
        smoothed = float(np.mean(self.scores[-self.settings.get("smoothing_epochs", 1) :]))
        if smoothed > self.best_smoothed or (
            smoothed == self.best_smoothed and val_loss < (self.best_loss or 1e30)
        ):
            self.best_smoothed, self.best_f1, self.best_loss = smoothed, f1, val_loss
            self.best_epoch = epoch + 1
            self.best_weights = self.model.get_weights()
        elapsed = time.monotonic() - self.started
        emit(
            "epoch",
            epoch=epoch + 1,
            epochs=self.settings["epochs"],
            loss=round(float(logs.get("loss", 0.0)), 5),
            accuracy=round(float(logs.get("accuracy", 0.0)), 5),
            val_loss=round(val_loss, 5),
            val_accuracy=round(val_accuracy, 5),
            val_macro_f1=round(f1, 5),
            learning_rate=float(np.asarray(self.model.optimizer.learning_rate)),
            elapsed_seconds=round(elapsed, 1),
            peak_rss_mb=peak_rss_mb(),
        )
        per_epoch = elapsed / (epoch + 1)
        settled = epoch + 1 >= MIN_EPOCHS_BEFORE_STOP
        if settled and epoch + 1 - self.best_epoch >= self.settings["patience"]:
            self.stop, self.stopped_because = True, "validation macro-F1 stopped improving"
        elif elapsed + per_epoch > self.settings["time_budget_seconds"]:
            self.stop, self.stopped_because = True, "the time budget would be exceeded"
        if self.stop:
            self.model.stop_training = True


def compiled_model(keras: Any, data: dict, request: TrainingRequest) -> Any:
    """The recipe's network with Adam (its learning rate set each epoch by ``Progress``)."""
    settings, classes = request.settings, len(request.labels)
    _, size, _, channels = data["train_x"].shape
    if request.base_path:
        model = build_finetune_model(
            keras, base_path=request.base_path, classes=classes, settings=settings
        )
    else:
        model = build_model(keras, size=size, channels=channels, classes=classes, settings=settings)
    model.compile(
        optimizer=keras.optimizers.Adam(settings["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(request: TrainingRequest) -> dict:
    tf = import_tensorflow(request.threads)
    import keras

    settings, labels = request.settings, request.labels
    keras.utils.set_random_seed(settings["seed"])
    data_dir = Path(request.data_dir)
    data = {name: np.load(data_dir / f"{name}.npy") for name in ("train_x", "val_x")}
    data["train_y"] = np.load(data_dir / "train_y.npy")
    data["val_y"] = np.load(data_dir / "val_y.npy")
    model = compiled_model(keras, data, request)
    train_data, validation = datasets(tf, keras, data, settings)
    progress = Progress(
        model=model, validation=validation, val_y=data["val_y"], settings=settings, labels=labels
    )
    weights = settings.get("class_weight_values") or {}
    model.fit(
        train_data,
        epochs=settings["epochs"],
        class_weight={i: weights[label] for i, label in enumerate(labels)} if weights else None,
        callbacks=[
            keras.callbacks.LambdaCallback(
                on_epoch_begin=progress.epoch_begin, on_epoch_end=progress.epoch_end
            )
        ],
        verbose=0,
    )
    training_seconds = time.monotonic() - progress.started
    if progress.best_weights is not None:
        model.set_weights(progress.best_weights)
    model.export(str(Path(request.out_dir) / "savedmodel"), format="tf_saved_model", verbose=False)
    return {
        "best_epoch": progress.best_epoch,
        "best_val_macro_f1": round(progress.best_f1, 5),
        "stopped_because": progress.stopped_because,
        "training_seconds": round(training_seconds, 1),
        "cpu_seconds": cpu_seconds(),
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m models_registry.training.worker REQUEST_JSON", file=sys.stderr)
        return 2
    request = TrainingRequest.read(Path(argv[1]))
    limit_resources(request)
    os.nice(request.nice)  # frames and validations first: this process takes what is left
    emit("started", pid=os.getpid())
    result = train(request)
    (Path(request.out_dir) / "result.json").write_text(json.dumps(result))
    emit("done", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
