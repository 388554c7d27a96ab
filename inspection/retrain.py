"""The retrain job: the plan's station's verified frames join its dataset (as "Dataset from
verified inspections" adds them: final word as label, duplicates skipped by checksum), a
new snapshot is frozen (new frames split like the rest) and a training run starts on it.
"""

from common.jobs import job_progress, register_job_kind
from common.models import Job
from inspection.to_dataset import FrameFilter, verified_frames_add
from models_registry.datasets.services import snapshot_create
from models_registry.training.models import RetrainPlan
from models_registry.training.retrain import RETRAIN
from models_registry.training.services import training_start


def register() -> None:
    """Declare the job kind (from InspectionConfig.ready()), on the imports' queue."""
    register_job_kind(RETRAIN, queue="imports", run="inspection.retrain.run_retrain")


def run_retrain(job: Job) -> dict:
    plan = RetrainPlan.objects.select_related("model", "dataset", "station").get(
        pk=job.payload["plan"]
    )
    frames = FrameFilter(station=plan.station.code if plan.station_id else "")
    job_progress(job, 0.0, f"Adding verified frames ({frames.describe()})", force=True)
    report, missing = verified_frames_add(job=job, dataset=plan.dataset, frames=frames)
    job_progress(job, 0.95, "Making the snapshot", force=True)
    snapshot = snapshot_create(
        dataset=plan.dataset,
        created_by=job.requested_by,
        note=f"Retrain of {plan.model}: verified frames ({frames.describe()}) added.",
    )
    run = training_start(
        snapshot=snapshot,
        model_name=plan.model.name,
        recipe=plan.recipe,
        settings=plan.settings_requested,
        requested_by=job.requested_by,
    )
    RetrainPlan.objects.filter(pk=plan.pk).update(last_run=run)
    return {
        "plan": plan.pk,
        "frames_added": report["imported"],
        "already_in_dataset": report["duplicates"],
        "frames_missing": len(missing),
        "snapshot": snapshot.number,
        "training_run": run.pk,
    }
