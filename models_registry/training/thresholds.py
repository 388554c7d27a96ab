"""Per-defect reject thresholds suggested from a training run's validation split.

When a run's version is registered, its serving runtime (the one the line
will use) scores every validation image, already prepared by the training
job with the version's own preprocessing. For each defect type, the
evaluation's rule (``metrics.suggest_thresholds``) gives the highest reject
threshold that lets at most the run's target escape rate of that type's
images pass. Nothing is applied: the deploy form offers them, and
``deployment_activate`` stores what the engineer keeps.
"""

import logging
from pathlib import Path

import numpy as np

from models_registry.decision import LineRules
from models_registry.evaluation import metrics
from models_registry.models import ModelVersion
from models_registry.runtime import RuntimeLoadError, configured_runtime
from models_registry.training.models import TrainingRun

logger = logging.getLogger(__name__)

DEFAULT_TARGET_ESCAPE_RATE = 0.01
# The confidence threshold a new deployment starts from; suggestions never exceed it.
DEFAULT_CONFIDENCE = 0.8


def _scores(version: ModelVersion, data_dir: Path) -> np.ndarray:
    """One row of probabilities per validation image, from the version as it will serve."""
    pixels = np.load(data_dir / "val_x.npy", mmap_mode="r")
    classifier = configured_runtime().load(version)
    try:
        rows = [
            np.asarray(classifier.classify(np.array(pixels[i : i + 1])), dtype=float).reshape(-1)
            for i in range(len(pixels))
        ]
    finally:
        classifier.close()
    return np.stack(rows)


def suggest(run: TrainingRun, version: ModelVersion, data_dir: Path, mapping: dict) -> dict:
    """The run's suggestions: per defect code the threshold and what it costs on the
    validation split, or a note saying why there are none. ``mapping`` is the dataset's
    label → defect code (None: no defect)."""
    labels = run.settings_chosen["labels"]
    target = run.settings_chosen.get("target_escape_rate", DEFAULT_TARGET_ESCAPE_RATE)
    base = {"split": "validation", "target_escape_rate": target, "thresholds": {}}
    unmapped = [label for label in labels if label not in mapping]
    if unmapped:
        return {
            **base,
            "note": f"No suggestion: map {', '.join(unmapped)} to a defect type or 'no defect' "
            "in the dataset, then evaluate the version on the validation split.",
        }
    meanings = tuple(mapping[label] for label in labels)
    truth = [meanings[int(i)] for i in np.load(data_dir / "val_y.npy")]
    try:
        scores = _scores(version, data_dir)
    except RuntimeLoadError as error:
        logger.warning("No threshold suggestion for %s: %s", version, error)
        return {**base, "note": f"No suggestion: {version} could not be loaded ({error})."}
    rules = LineRules(meanings=meanings, confidence_threshold=DEFAULT_CONFIDENCE)
    suggestions = metrics.suggest_thresholds(scores, truth, rules, target)
    return {
        **base,
        "images": len(truth),
        "confidence_threshold": DEFAULT_CONFIDENCE,
        "thresholds": suggestions,
    }


def suggest_and_store(run: TrainingRun, version: ModelVersion, data_dir: Path, mapping) -> dict:
    """Compute the suggestions and keep them with the run (the version's provenance).

    The version is registered by now: a suggestion that cannot be computed is a
    note on the run, never a failed training.
    """
    try:
        result = suggest(run, version, data_dir, mapping)
    except Exception as error:  # the version stands without suggestions
        logger.exception("Threshold suggestion failed for %s", version)
        result = {"split": "validation", "thresholds": {}, "note": f"No suggestion: {error}"}
    TrainingRun.objects.filter(pk=run.pk).update(suggested_thresholds=result)
    run.suggested_thresholds = result
    return result


def threshold_rows(run: TrainingRun | None) -> dict[str, float]:
    """Defect code → suggested threshold, as the deploy form pre-fills them."""
    if run is None:
        return {}
    rows = (run.suggested_thresholds or {}).get("thresholds") or {}
    return {code: float(row["threshold"]) for code, row in rows.items()}
