"""What a training run will do, chosen from the snapshot's images, and the checks before it starts.

A quality engineer should not have to know what input size, colour mode,
augmentation, class weighting or learning-rate schedule suits their
photographs: ``choose_settings`` picks each from the data and says why. Any of
them can be overridden; an override out of range, or data a training cannot
learn from (one label, an empty split, a label too small for the validation
split), is refused with a ValidationError before any job exists.
"""

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError

from common.preprocessing import (
    DATASET_FORMATS,
    INTERPOLATIONS,
    FrameError,
    Preprocessing,
    open_frame,
)
from models_registry.datasets.models import DatasetSnapshot, SnapshotImage
from models_registry.training.worker import SAMPLING_POWER

# Pillow modes without colour: a dataset of only these trains a greyscale model.
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
MIN_INPUT_SIZE, MAX_CHOSEN_INPUT_SIZE = 32, 128  # what 2 CPU cores train in minutes
MIN_TRAIN_PER_LABEL = 2
MIN_VALIDATION_PER_LABEL = 1
GREY_SAMPLES, GREY_TOLERANCE = 16, 3  # images looked at; channel spread counted as grey
ROTATION = 0.05  # of a full turn: ±18°
BRIGHTNESS_SHARE = 0.1  # of the mean pixel level
IMBALANCE_RATIO = 1.5  # above this largest/smallest train count, rare labels are drawn more
# Below this many validation images of a label, one image moves its F1 by a tenth or more:
# the best epoch is then judged on macro-F1 averaged over SMOOTHED_EPOCHS epochs.
FEW_VALIDATION, SMOOTHED_EPOCHS = 10, 3
FLIPS = ("none", "horizontal", "vertical", "both")
# How train images are drawn each epoch: shuffled as they are, or each label with a
# probability proportional to the square root of its count, or every label equally often.
SAMPLINGS = tuple(SAMPLING_POWER)
POOLINGS = ("avg_max", "avg")  # how the last feature map becomes one vector
SCHEDULES = ("cosine", "constant")
CLASS_WEIGHTS = ("sqrt", "balanced", "none")  # inverse sqrt of frequency, inverse, equal
COLOR_MODES = ("grayscale", "rgb")


@dataclass(frozen=True)
class Setting:
    """One setting an engineer may override: its type and range (inclusive unless open)."""

    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    low_open: bool = False  # a learning rate of 0 learns nothing

    def check(self, name: str, value: Any) -> Any:
        if self.choices:
            if value not in self.choices:
                raise ValidationError(
                    {"settings": f"{name} must be one of {', '.join(self.choices)}; got {value!r}."}
                )
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError({"settings": f"{name} must be a number; got {value!r}."})
        if self.kind is int and value != int(value):
            raise ValidationError({"settings": f"{name} must be a whole number; got {value!r}."})
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or value > self.high:
            bound = f"above {self.low:g}" if self.low_open else f"from {self.low:g}"
            raise ValidationError(
                {"settings": f"{name} must be {bound} to {self.high:g}; got {value!r}."}
            )
        return self.kind(value)


SETTINGS: dict[str, Setting] = {
    "epochs": Setting(int, 1, 500),
    "batch_size": Setting(int, 1, 512),
    "input_size": Setting(int, 16, 1024),
    "color_mode": Setting(str, choices=COLOR_MODES),
    "interpolation": Setting(str, choices=INTERPOLATIONS),
    "learning_rate": Setting(float, 0.0, 1.0, low_open=True),
    "lr_schedule": Setting(str, choices=SCHEDULES),
    "patience": Setting(int, 1, 100),
    "smoothing_epochs": Setting(int, 1, 10),
    "target_escape_rate": Setting(float, 0.0, 1.0),
    "class_weights": Setting(str, choices=CLASS_WEIGHTS),
    "sampling": Setting(str, choices=SAMPLINGS),
    "pooling": Setting(str, choices=POOLINGS),
    "flip": Setting(str, choices=FLIPS),
    "rotation": Setting(float, 0.0, 0.5),
    "shift": Setting(float, 0.0, 0.5),
    "brightness": Setting(float, 0.0, 1.0),
    "contrast": Setting(float, 0.0, 1.0),
    "width": Setting(int, 4, 256),
    "dropout": Setting(float, 0.0, 0.9),
    "seed": Setting(int, 0, 2**31 - 1),
    "time_budget_seconds": Setting(int, 10, 86400),
}


@dataclass
class SnapshotFacts:
    """What the snapshot's train and validation images are: counts, modes, sizes."""

    counts: dict[str, Counter] = field(default_factory=dict)  # split -> label -> n
    modes: Counter = field(default_factory=Counter)
    short_sides: list[int] = field(default_factory=list)
    grey_content: bool = False  # colour files whose sampled pixels are all grey
    all_square: bool = True  # every image as wide as high (a part seen from above)
    mean_level: float = 128.0  # sampled train images' mean pixel value, 0..255

    @property
    def labels(self) -> list[str]:
        names = set(self.counts.get("train", {})) | set(self.counts.get("validation", {}))
        return sorted(names)


def snapshot_facts(snapshot: DatasetSnapshot) -> SnapshotFacts:
    facts = SnapshotFacts(counts={"train": Counter(), "validation": Counter(), "test": Counter()})
    rows = (
        SnapshotImage.objects.filter(snapshot=snapshot, split__in=["train", "validation"])
        .values_list("split", "label__name", "image__mode", "image__width", "image__height")
        .order_by()
    )
    for split, label, mode, width, height in rows.iterator(chunk_size=2000):
        facts.counts[split][label] += 1
        facts.modes[mode] += 1
        facts.short_sides.append(min(width, height))
        facts.all_square = facts.all_square and width == height
    for label in SnapshotImage.objects.filter(snapshot=snapshot, split="test").values_list(
        "label__name", flat=True
    ):
        facts.counts["test"][label] += 1
    if facts.modes:
        grey, facts.mean_level = _sampled_pixels(snapshot)
        facts.grey_content = grey and not all(mode in GREY_MODES for mode in facts.modes)
    return facts


def _pixels(data: bytes) -> np.ndarray:
    """A 64x64 RGB thumbnail: a few pixels tell whether the channels differ and how bright."""
    frame = open_frame(
        data, max_pixels=settings.LINESIGHT["MAX_FRAME_PIXELS"], formats=DATASET_FORMATS
    )
    frame.image.draft("RGB", (64, 64))
    return np.asarray(frame.image.convert("RGB").resize((64, 64)), dtype=np.int16)


def _sampled_pixels(snapshot: DatasetSnapshot) -> tuple[bool, float]:
    """Whether sampled train photographs are grey (R = G = B, as cameras often save them: a
    greyscale model then learns as well from a third of the input), and their mean level."""
    items = SnapshotImage.objects.filter(snapshot=snapshot, split="train").select_related("image")
    grey, levels = True, []
    for item in items.order_by("image__sha256")[:GREY_SAMPLES]:  # spread, and repeatable
        try:
            with item.image.file.storage.open(item.image.file.name, "rb") as handle:
                pixels = _pixels(handle.read())
        except (OSError, FrameError):
            grey = False
            continue
        spread = pixels.max(axis=2) - pixels.min(axis=2)
        grey = grey and bool(np.percentile(spread, 99) <= GREY_TOLERANCE)
        levels.append(float(pixels.mean()))
    return grey, (float(np.mean(levels)) if levels else 128.0)


def check_data(facts: SnapshotFacts, snapshot: DatasetSnapshot) -> None:
    """Refuse a snapshot a training cannot learn from or validate on, saying what to fix."""
    train, validation = facts.counts["train"], facts.counts["validation"]
    if not train:
        raise ValidationError(
            {"snapshot": f"{snapshot} has no train images; split the dataset and snapshot again."}
        )
    if not validation:
        raise ValidationError(
            {
                "snapshot": f"{snapshot} has no validation images; training needs them to choose "
                "when to stop. Split the dataset with a validation share and snapshot again."
            }
        )
    if len(facts.labels) < 2:
        raise ValidationError(
            {
                "snapshot": f"{snapshot} has one label ({facts.labels[0]}); a classifier needs "
                "at least two (e.g. good parts and one defect)."
            }
        )
    for label in facts.labels:
        if train[label] < MIN_TRAIN_PER_LABEL or validation[label] < MIN_VALIDATION_PER_LABEL:
            raise ValidationError(
                {
                    "snapshot": f"Label '{label}' has {train[label]} train and "
                    f"{validation[label]} validation images in {snapshot}; training needs at "
                    f"least {MIN_TRAIN_PER_LABEL} train and {MIN_VALIDATION_PER_LABEL} validation "
                    "image per label. Add images of it or split again."
                }
            )


def _chosen(facts: SnapshotFacts) -> tuple[dict[str, Any], dict[str, str]]:
    """Every setting as the data suggests it, and why."""
    grey = facts.grey_content or all(mode in GREY_MODES for mode in facts.modes)
    median_side = int(statistics.median(facts.short_sides))
    size = min(max(median_side, MIN_INPUT_SIZE), MAX_CHOSEN_INPUT_SIZE)
    size = size - size % 8 if size >= MIN_INPUT_SIZE else size
    train = facts.counts["train"]
    ratio = max(train.values()) / min(train.values())
    imbalanced = ratio > IMBALANCE_RATIO
    fewest_label, fewest = min(facts.counts["validation"].items(), key=lambda item: item[1])
    few = fewest < FEW_VALIDATION
    values = {
        "color_mode": "grayscale" if grey else "rgb",
        "input_size": size,
        "interpolation": "bilinear",
        "epochs": 100,
        "batch_size": min(32, sum(train.values())),
        "learning_rate": 0.002,
        "lr_schedule": "cosine",
        "patience": 20,
        "smoothing_epochs": SMOOTHED_EPOCHS if few else 1,
        "class_weights": "none",
        "sampling": "sqrt" if imbalanced else "shuffle",
        "pooling": "avg_max",
        "flip": "both",
        "rotation": ROTATION if facts.all_square else 0.0,
        "shift": 0.05,
        # ±10 % of the photographs' own mean level: on dark parts a fixed share of 255 would
        # swamp the picture.
        "brightness": round(max(0.01, BRIGHTNESS_SHARE * facts.mean_level / 255), 3),
        "contrast": 0.1,
        "width": 32,
        "dropout": 0.3,
        "seed": 1234,
        "time_budget_seconds": 900,
        "target_escape_rate": 0.01,
    }
    return values, _reasons(facts, median_side, ratio, (fewest_label, fewest))


def _reasons(
    facts: SnapshotFacts, median_side: int, ratio: float, fewest: tuple[str, int]
) -> dict[str, str]:
    """Why ``_chosen`` chose each setting, in the words the run's page shows."""
    imbalanced = ratio > IMBALANCE_RATIO
    fewest_label, fewest_count = fewest
    few = fewest_count < FEW_VALIDATION
    modes = ", ".join(f"{mode} {count}" for mode, count in facts.modes.most_common())
    grey_note = "; sampled colour files hold grey pixels only" if facts.grey_content else ""
    return {
        "color_mode": f"image modes: {modes}{grey_note}",
        "input_size": f"median short side {median_side} px, kept within "
        f"{MIN_INPUT_SIZE}..{MAX_CHOSEN_INPUT_SIZE} for CPU training",
        "class_weights": f"largest/smallest label in train: {ratio:.1f}x; "
        + (
            "the sampling already shows rare labels more often, and weighting them too "
            "would make the model call defects on good parts ('sqrt' or 'balanced' weigh "
            "a label by the inverse square root of its count, or its inverse)"
            if imbalanced
            else "balanced enough, every image counts the same"
        ),
        "sampling": f"largest/smallest label in train: {ratio:.1f}x: each label drawn in "
        "proportion to the square root of its count, so rare defects show in most batches "
        "without their few images repeating endlessly ('balanced': every label equally often)"
        if imbalanced
        else "labels are balanced enough: images shuffled as they are",
        "pooling": "the last feature map's average and maximum: a small defect shows at a few "
        "positions, which an average alone washes out",
        "flip": "inspection photos of a part: mirrored views are the same part (override "
        "with 'none' when orientation matters)",
        "rotation": "every image is square (a part seen from above): small rotations (±18°) "
        "for its placement"
        if facts.all_square
        else "images are not all square: a rotation would cut the part's corners and fill "
        "them in, so none (shifts of ±5 % only)",
        "brightness": f"lighting: ±10 % of the photographs' mean level ({facts.mean_level:.0f} "
        "of 255) and contrast ±10 %",
        "lr_schedule": "Adam with cosine decay over the epochs or the time budget, whichever "
        "ends first",
        "patience": "stops when validation macro-F1 has not improved for this many epochs "
        "(not before epoch 12); the best epoch's weights are kept",
        "smoothing_epochs": f"'{fewest_label}' has {fewest_count} validation images: "
        + (
            f"one image moves its F1 a lot, so an epoch is judged on validation macro-F1 "
            f"averaged over the last {SMOOTHED_EPOCHS} epochs"
            if few
            else "each epoch is judged on its own validation macro-F1"
        ),
        "seed": "fixed, so the same run twice gives the same metrics within noise",
        "time_budget_seconds": "stops after the last epoch that fits in the budget",
        "target_escape_rate": "per-defect reject thresholds are suggested so that at most "
        "this share of each defect's validation images would pass (1 %)",
    }


BASE_FIXED = ("input_size", "color_mode")  # a fine-tuned model keeps its base's input


def _from_base(values: dict, why: dict, base: dict, requested: dict) -> None:
    fixed = sorted(set(requested) & set(BASE_FIXED))
    if fixed:
        raise ValidationError(
            {"settings": f"{', '.join(fixed)} come(s) from the base version when fine-tuning."}
        )
    values.update(base, learning_rate=0.0005)
    for name in BASE_FIXED:
        why[name] = "the base version's input"
    why["learning_rate"] = "lower than from scratch, so the base's features are kept"


def choose_settings(
    facts: SnapshotFacts, requested: dict | None, base: dict | None = None
) -> dict[str, Any]:
    """The settings the run will use: the data's choices (or the base version's input when
    fine-tuning) with the engineer's overrides."""
    requested = dict(requested or {})
    unknown = sorted(set(requested) - set(SETTINGS))
    if unknown:
        raise ValidationError(
            {"settings": f"Unknown setting(s): {', '.join(unknown)}. Known: {', '.join(SETTINGS)}."}
        )
    values, why = _chosen(facts)
    if base is not None:
        _from_base(values, why, base, requested)
    for name, value in requested.items():
        values[name] = SETTINGS[name].check(name, value)
        why[name] = "set by the engineer"
    values["class_weight_values"] = class_weights(
        facts.counts["train"], values["class_weights"], values["sampling"]
    )
    values["labels"] = facts.labels
    values["overridden"] = sorted(requested)
    values["why"] = why
    return values


def class_weights(train: Counter, how: str, sampling: str = "shuffle") -> dict[str, float]:
    """Each label's weight in the loss, averaging 1 over the images as ``sampling`` draws
    them (so the loss keeps its usual scale)."""
    if how == "none":
        return {}
    power = 0.5 if how == "sqrt" else 1.0
    raw = {label: (1.0 / n) ** power for label, n in sorted(train.items())}
    drawn = {label: n ** SAMPLING_POWER[sampling] for label, n in train.items()}
    mean = sum(raw[label] * drawn[label] for label in train) / sum(drawn.values())
    return {label: round(weight / mean, 4) for label, weight in raw.items()}


def preprocessing_for(chosen: dict) -> Preprocessing:
    """The preprocessing the trained version declares, and so what training feeds it.

    The model takes uint8 pixels and scales them itself, so validation reads a
    uint8 signature and the version declares 0..255: serving's model_input then
    returns exactly the pixels training saw.
    """
    channels = 1 if chosen["color_mode"] == "grayscale" else 3
    return Preprocessing(
        height=chosen["input_size"],
        width=chosen["input_size"],
        channels=channels,
        dtype="uint8",
        resize_mode="stretch",
        value_scale="0_255",
        color_mode=chosen["color_mode"],
        interpolation=chosen["interpolation"],
        jpeg_draft=False,
    )
