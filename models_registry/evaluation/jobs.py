"""The evaluation job: every image of a snapshot split through each version, as served.

Each image is read once from storage and goes through the version's own
preprocessing (common.preprocessing, as serving) and serving runtime
(TFLite or SavedModel, as validation chose). Results are written in batches,
so memory holds a few numbers per image, never the images.
"""

import time
from dataclasses import dataclass, field, replace

import numpy as np
from django.conf import settings
from django.db import transaction

from common.jobs import JobFailed, job_progress
from common.models import Job
from common.preprocessing import DATASET_FORMATS, FrameError, Preprocessing, model_input, open_frame
from models_registry.evaluation import metrics
from models_registry.evaluation.models import Evaluation, EvaluationResult
from models_registry.evaluation.plan import split_items
from models_registry.evaluation.services import rules_from_options
from models_registry.models import ModelVersion
from models_registry.runtime import Classifier, RuntimeLoadError, configured_runtime

WRITE_BATCH = 200
MAX_SKIPPED_LISTED = 20


def image_input(data: bytes, prep: Preprocessing) -> np.ndarray:
    """A dataset image's bytes as the model's input batch: the serving path's own steps."""
    frame = open_frame(
        data, max_pixels=settings.LINESIGHT["MAX_FRAME_PIXELS"], formats=DATASET_FORMATS
    )
    return model_input(frame, prep)


@dataclass
class VersionRun:
    """One version loaded for the evaluation, and what it said about each image so far."""

    version: ModelVersion
    outputs: tuple[str, ...]  # class of each output label
    prep: Preprocessing
    classifier: Classifier
    truth: list[int] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def predict(self, data: bytes, prep: Preprocessing | None = None) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        scores = self.classifier.classify(image_input(data, prep or self.prep))
        return np.asarray(scores, dtype=np.float32), (time.perf_counter() - started) * 1000

    @property
    def correct(self) -> np.ndarray:
        return np.asarray(self.truth) == np.asarray(self.predicted)


def _load(evaluation: Evaluation) -> list[VersionRun]:
    outputs = evaluation.options["outputs"]
    versions = (
        [evaluation.version, evaluation.challenger]
        if evaluation.challenger_id
        else [evaluation.version]
    )
    runs = []
    for version in versions:
        try:
            classifier = configured_runtime().load(version)  # serving's own loader
        except RuntimeLoadError as exc:
            raise JobFailed(f"{version} could not be loaded: {exc}") from exc
        runs.append(
            VersionRun(
                version=version,
                outputs=tuple(outputs[str(version.pk)]),
                prep=Preprocessing.for_version(version),
                classifier=classifier,
            )
        )
    return runs


def run_evaluation(job: Job) -> dict:
    """Run the evaluation named in the job's payload; a re-run starts from scratch."""
    evaluation = Evaluation.objects.select_related(
        "version__model", "challenger__model", "snapshot__dataset"
    ).get(pk=job.payload["evaluation"])
    EvaluationResult.objects.filter(evaluation=evaluation).delete()
    runs = _load(evaluation)
    try:
        return _evaluate(job, evaluation, runs)
    finally:
        for run in runs:
            run.classifier.close()


def _evaluate(job: Job, evaluation: Evaluation, runs: list[VersionRun]) -> dict:
    """Every image of the split through every run, rows written in batches; then the figures."""
    classes = list(evaluation.classes)
    index = {name: i for i, name in enumerate(classes)}
    truth_of = evaluation.options["truth"]
    fast_prep = replace(runs[0].prep, jpeg_draft=True)
    check_fast = evaluation.options.get("check_fast_path", False)
    fast_agree = fast_total = 0
    skipped: list[str] = []
    pending: list[EvaluationResult] = []
    total = evaluation.image_count or 1
    items = split_items(snapshot=evaluation.snapshot, split=evaluation.split).select_related(
        "image"
    )
    job_progress(job, 0.0, f"Loaded; evaluating {total} images", force=True)
    for done, item in enumerate(items.iterator(chunk_size=WRITE_BATCH), start=1):
        with item.image.file.open("rb") as handle:
            data = handle.read()
        truth = truth_of[str(item.label_id)]
        try:
            predictions = [run.predict(data) for run in runs]
            fast = runs[0].predict(data, fast_prep)[0] if check_fast else None
        except FrameError as exc:
            skipped.append(f"{item.image.original_name or item.image.sha256[:12]}: {exc}")
            continue
        for run, (scores, latency) in zip(runs, predictions, strict=True):
            pending.append(_record(evaluation, item, run, truth, scores, latency, index))
        if fast is not None:
            champion_row = pending[-len(runs)]
            champion_row.fast_path_predicted = runs[0].version.labels[int(np.argmax(fast))]
            fast_total += 1
            fast_agree += champion_row.fast_path_predicted == champion_row.predicted_label
        if len(pending) >= WRITE_BATCH:
            EvaluationResult.objects.bulk_create(pending)
            pending = []
        job_progress(job, min(done / total, 0.99), f"Evaluated {done} of {total} images")
    EvaluationResult.objects.bulk_create(pending)
    if not runs[0].truth:
        raise JobFailed(f"No image of the split could be read: {'; '.join(skipped[:3])}")
    _finish(evaluation, runs, classes, skipped, (fast_agree, fast_total) if check_fast else None)
    return {
        "evaluation": evaluation.pk,
        "images": len(runs[0].truth),
        "skipped": len(skipped),
        "accuracy": evaluation.metrics["accuracy"],
    }


def _record(evaluation, item, run: VersionRun, truth: str, scores, latency, index):
    top = int(np.argmax(scores))
    predicted = run.outputs[top]
    run.truth.append(index[truth])
    run.predicted.append(index[predicted])
    run.confidence.append(float(scores[top]))
    run.scores.append(scores)
    run.latency_ms.append(latency)
    return EvaluationResult(
        evaluation=evaluation,
        item=item,
        version=run.version,
        truth=truth,
        predicted_label=run.version.labels[top],
        predicted=predicted,
        correct=predicted == truth,
        confidence=float(scores[top]),
        scores=[round(float(s), 6) for s in scores],
        latency_ms=latency,
    )


def version_metrics(run: VersionRun, classes: list[str]) -> dict:
    """Every figure of one version's run."""
    figures = metrics.classification_metrics(run.truth, run.predicted, classes)
    reliability = metrics.calibration(run.confidence, run.correct)
    latencies = np.asarray(run.latency_ms)
    return {
        **figures,
        "calibration": reliability,
        "ece": reliability["ece"],
        "latency_ms": {
            "p50": float(np.percentile(latencies, 50)),
            "p90": float(np.percentile(latencies, 90)),
        },
        "runtime": run.classifier.kind,
        "preprocessing": run.prep.as_dict(),
    }


def _line(evaluation: Evaluation, run: VersionRun) -> dict | None:
    options = evaluation.options
    codes = options.get("output_codes", {}).get(str(run.version.pk))
    if codes is None or options.get("truth_codes") is None:
        return None  # some label is unmapped: no verdicts to simulate
    rules = rules_from_options(options["thresholds"], codes)
    truth = [options["truth_codes"][evaluation.classes[t]] for t in run.truth]
    scores = np.stack(run.scores)
    return {
        **metrics.line_outcomes(scores, truth, rules),
        "suggestions": metrics.suggest_thresholds(
            scores, truth, rules, options["target_escape_rate"]
        ),
    }


def _finish(evaluation, runs, classes, skipped, fast) -> None:
    evaluation.metrics = {
        **version_metrics(runs[0], classes),
        "skipped": skipped[:MAX_SKIPPED_LISTED],
        "skipped_count": len(skipped),
    }
    evaluation.line = {
        "thresholds": evaluation.options["thresholds"],
        "version": _line(evaluation, runs[0]),
    }
    if len(runs) > 1:
        evaluation.challenger_metrics = version_metrics(runs[1], classes)
        evaluation.line["challenger"] = _line(evaluation, runs[1])
        evaluation.paired_test = {
            **metrics.mcnemar(runs[0].correct, runs[1].correct),
            "disagreements": int(
                np.sum(np.asarray(runs[0].predicted) != np.asarray(runs[1].predicted))
            ),
        }
    if fast is not None:
        agree, total = fast
        evaluation.fast_path = {
            "images": total,
            "agree": agree,
            "agreement": agree / total if total else 0.0,
        }
    with transaction.atomic():
        evaluation.save(
            update_fields=["metrics", "challenger_metrics", "paired_test", "line", "fast_path"]
        )


def cleanup_evaluation(job: Job) -> None:
    """A worker died mid-run: drop the rows it wrote, so no half result is shown as one."""
    EvaluationResult.objects.filter(evaluation_id=job.payload.get("evaluation")).delete()
