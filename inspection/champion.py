"""Champion/challenger on production frames: the station's latest verified frames, run
through its deployed version and a trained one, the inspector's final word as truth.

It reads inspections and runs registry versions, so it lives in inspection (the
higher of the two); the registry starts it by its kind's name
(``models_registry.training.compare``). Both versions are loaded by serving's
own loader and judged by the station's deployment thresholds (the registry's
one decision rule), so escapes and false rejects are what the line would see.
"""

import numpy as np

from common.jobs import JobFailed, job_progress, register_job_kind
from common.models import Job
from common.preprocessing import FrameError, Preprocessing
from inspection.choices import ReviewStatus
from inspection.models import Inspection
from masterdata.models import Station
from models_registry.evaluation import metrics
from models_registry.evaluation.jobs import image_input
from models_registry.evaluation.plan import NO_DEFECT
from models_registry.evaluation.services import line_thresholds, rules_from_options
from models_registry.models import Deployment, ModelVersion
from models_registry.runtime import RuntimeLoadError, configured_runtime
from models_registry.training.compare import CHAMPION_CHALLENGER
from models_registry.training.models import TrainingRun


def register() -> None:
    """Declare the job kind (from InspectionConfig.ready()), on the evaluations' queue."""
    register_job_kind(
        CHAMPION_CHALLENGER, queue="evaluations", run="inspection.champion.run_comparison"
    )


def latest_verified(station: Station, count: int) -> list[Inspection]:
    """The station's ``count`` most recently captured frames an inspector decided."""
    return list(
        Inspection.objects.filter(station=station, review_status=ReviewStatus.VERIFIED)
        .select_related("final_defect_type")
        .order_by("-captured_at", "-id")[:count]
    )


def _output_codes(version: ModelVersion) -> tuple[str | None, ...]:
    mappings = sorted(version.mappings.select_related("defect_type"), key=lambda m: m.index)
    if any(not m.is_mapped for m in mappings) or len(mappings) != len(version.labels):
        raise JobFailed(f"{version} has unmapped labels; map them to compare it.")
    return tuple(None if m.no_defect else m.defect_type.code for m in mappings)


def _scores(version: ModelVersion, frames: list[bytes | None]) -> list[np.ndarray | None]:
    try:
        classifier = configured_runtime().load(version)
    except RuntimeLoadError as exc:
        raise JobFailed(f"{version} could not be loaded: {exc}") from exc
    prep = Preprocessing.for_version(version)
    rows: list[np.ndarray | None] = []
    try:
        for data in frames:
            try:
                batch = image_input(data, prep) if data is not None else None
            except FrameError:
                batch = None
            rows.append(
                None if batch is None else np.asarray(classifier.classify(batch)).reshape(-1)
            )
    finally:
        classifier.close()
    return rows


def _frame_bytes(inspection: Inspection) -> bytes | None:
    try:
        with inspection.image.open("rb") as handle:
            return handle.read()
    except OSError:
        return None  # removed by retention: left out of the comparison


def _figures(scores, codes, truth: list[str | None], rules_data: dict) -> dict:
    """Accuracy, macro-F1, per-class F1 and the line's escapes and false rejects."""
    classes = sorted({NO_DEFECT, *(c for c in codes if c), *(t for t in truth if t)})
    classes.remove(NO_DEFECT)
    classes = [NO_DEFECT, *classes]
    index = {name: i for i, name in enumerate(classes)}
    predicted = [index[codes[int(np.argmax(row))] or NO_DEFECT] for row in scores]
    figures = metrics.classification_metrics(
        [index[t or NO_DEFECT] for t in truth], predicted, classes
    )
    line = metrics.line_outcomes(np.stack(scores), truth, rules_from_options(rules_data, codes))
    return {
        "accuracy": figures["accuracy"],
        "macro_f1": figures["macro_f1"],
        "per_class_f1": {name: row["f1"] for name, row in figures["per_label"].items()},
        "confusion": figures["confusion"],
        "escapes": line["escapes"],
        "escape_rate": line["escape_rate"],
        "false_rejects": line["false_rejects"],
        "false_reject_rate": line["false_reject_rate"],
        "review_load": line["review_load"],
    }


def run_comparison(job: Job) -> dict:
    """Both versions on the station's latest verified frames; the figures side by side."""
    payload = job.payload
    station = Station.objects.get(pk=payload["station"])
    deployment = Deployment.objects.select_related("version__model").get(pk=payload["deployment"])
    run = TrainingRun.objects.select_related("version__model").get(pk=payload["training_run"])
    champion, challenger = deployment.version, run.version
    frames = latest_verified(station, payload["frames"])
    job_progress(job, 0.1, f"Reading {len(frames)} verified frames of {station.code}", force=True)
    data = [_frame_bytes(frame) for frame in frames]
    truth_all = [f.final_defect_type.code if f.final_is_defect else None for f in frames]
    rules_data = line_thresholds(champion, deployment)
    sides, scored = {}, {}
    for step, (side, version) in enumerate((("champion", champion), ("challenger", challenger))):
        scored[side] = _scores(version, data)
        job_progress(job, 0.4 + 0.4 * step, f"{version} judged the frames")
    usable = [
        i
        for i in range(len(frames))
        if scored["champion"][i] is not None and scored["challenger"][i] is not None
    ]
    truth = [truth_all[i] for i in usable]
    if usable:
        for side, version in (("champion", champion), ("challenger", challenger)):
            rows = [scored[side][i] for i in usable]
            sides[side] = {
                "version": str(version),
                **_figures(rows, _output_codes(version), truth, rules_data),
            }
    return {
        "station": station.code,
        "deployment": deployment.pk,
        "evaluation": payload["evaluation"],
        "champion": str(champion),
        "challenger": str(challenger),
        "production": {
            "frames_asked": payload["frames"],
            "frames": len(usable),
            "left_out": len(frames) - len(usable),
            "defective": sum(1 for t in truth if t),
            **sides,
        },
    }
