"""A trained model enters the registry through the one gate every model passes.

``register`` uploads the export with ``version_upload`` (labels.txt inside,
as a user's archive), validates it with the validation job (sandbox,
signature, TFLite conversion with parity; the version page shows its steps)
and maps its labels from the dataset's label → defect type mapping. It is never deployed. A version
that does not end ready, or whose run was cancelled meanwhile, is removed
with its files by ``unregister``: nothing stays half-registered.
"""

import logging
import zipfile
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction

from common.jobs import JobFailed, JobLost, job_progress
from common.models import Job, JobState
from models_registry.choices import VersionStatus
from models_registry.models import MLModel, ModelVersion
from models_registry.services import label_mappings_update, model_create, version_upload
from models_registry.training.models import TrainingRun
from models_registry.validation.jobs import validation_jobs, validation_run_now

logger = logging.getLogger(__name__)

REGISTER_PROGRESS = 0.9


def zip_export(out_dir: Path, labels: list[str]) -> Path:
    """The exported SavedModel with labels.txt, zipped as a user would upload it."""
    export = out_dir / "savedmodel"
    (export / "labels.txt").write_text("\n".join(labels) + "\n")
    target = out_dir / "model.zip"
    with zipfile.ZipFile(target, "x", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(export.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(export).as_posix())
    return target


def _notes(run: TrainingRun, outcome: dict) -> str:
    parent = f" Fine-tuned from {run.parent}." if run.parent_id else ""
    return (
        f"Trained in LineSight from {run.snapshot} (training run {run.pk}, recipe "
        f"'{run.recipe}'): best epoch {outcome['best_epoch']}, validation macro-F1 "
        f"{outcome['best_val_macro_f1']:.3f}, {outcome['training_seconds']:.0f} s of "
        f"training.{parent}"
    )


def _upload(run: TrainingRun, archive: Path, outcome: dict) -> ModelVersion:
    labels = run.settings_chosen["labels"]
    with transaction.atomic():
        model = MLModel.objects.filter(name=run.model_name).first()
        if model is None:
            model = model_create(name=run.model_name, description=f"Trained from {run.snapshot}.")
        with open(archive, "rb") as handle:
            version = version_upload(
                model=model,
                artifact=File(handle, name="model.zip"),
                labels=labels,
                notes=_notes(run, outcome),
                uploaded_by=run.requested_by,
                resize_interpolation=run.settings_chosen["interpolation"],
            )
        # This job validates it right below; the validation task queued on commit finds
        # the version no longer 'uploaded' and leaves it alone.
        ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.VALIDATING)
        TrainingRun.objects.filter(pk=run.pk).update(version=version)
    run.version = version
    return version


def dataset_mapping(run: TrainingRun) -> dict[str, str | None]:
    """The dataset's meaning of each label: a defect type code, or None for no defect."""
    mapping: dict[str, str | None] = {}
    for label in run.snapshot.dataset.labels.select_related("defect_type"):
        if label.name in run.settings_chosen["labels"] and label.is_mapped:
            mapping[label.name] = label.defect_type.code if label.defect_type_id else None
    return mapping


def register(job: Job, run: TrainingRun, out_dir: Path, outcome: dict) -> ModelVersion:
    """Upload, validate and map the trained model; the ready version (JobFailed if not)."""
    job_progress(job, REGISTER_PROGRESS, "Registering the trained model: validation", force=True)
    version = _upload(run, zip_export(out_dir, run.settings_chosen["labels"]), outcome)
    validation_run_now(version.pk)  # the validation job, as the upload's task would run it
    version = ModelVersion.objects.select_related("model").get(pk=version.pk)
    if version.status != VersionStatus.READY:
        reason = version.status_reason
        unregister(run)
        raise JobFailed(f"The trained model did not pass validation: {reason}")
    with transaction.atomic():
        # Serialised with training_cancel, which locks the run too.
        TrainingRun.objects.select_for_update().get(pk=run.pk)
        cancelled = not Job.objects.filter(
            pk=job.pk, attempt=job.attempt, state=JobState.RUNNING
        ).exists()
        if not cancelled:
            label_mappings_update(version=version, mapping=dataset_mapping(run))
    if cancelled:
        unregister(run)
        raise JobLost(str(job.pk))
    version.refresh_from_db()
    return version


def unregister(run: TrainingRun) -> None:
    """Remove the run's version (never deployed, never evaluated) and its stored files;
    the model too when this run created it and it has no other version."""
    version = ModelVersion.objects.filter(pk=run.version_id).select_related("model").first()
    run.version = None
    if version is None:
        return
    storage = version.artifact.storage
    names = [
        f.name for f in (version.artifact, version.serving_savedmodel, version.tflite_artifact) if f
    ]
    model = version.model
    with transaction.atomic():
        TrainingRun.objects.filter(pk=run.pk).update(version=None)
        validation_jobs(version).delete()  # they describe a version that no longer exists
        version.delete()
        if not model.versions.exists() and model.created_at >= run.created_at:
            model.delete()
        transaction.on_commit(lambda: _delete_files(storage, names))


def _delete_files(storage, names: list[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        except OSError:
            logger.warning("Could not delete %s of an unregistered training", name, exc_info=True)


def attach_evaluation(run: TrainingRun, version: ModelVersion):
    """Evaluate the new version on the snapshot's test split (a job of its own), if any."""
    from models_registry.evaluation.services import evaluation_start

    if not run.snapshot.items.filter(split="test").exists():
        return None
    try:
        evaluation = evaluation_start(
            version=version, snapshot=run.snapshot, split="test", requested_by=run.requested_by
        )
    except ValidationError as error:
        logger.warning("The evaluation of %s could not start: %s", version, error)
        return None
    TrainingRun.objects.filter(pk=run.pk).update(evaluation=evaluation)
    run.evaluation = evaluation
    return evaluation
