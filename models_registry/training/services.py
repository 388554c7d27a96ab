"""Starting and cancelling training runs; every refusal comes before a job exists."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from common.jobs import job_cancel, job_enqueue
from common.models import JobState
from models_registry.choices import VersionStatus
from models_registry.datasets.models import DatasetSnapshot
from models_registry.models import MLModel, ModelVersion
from models_registry.training.base import check_base
from models_registry.training.kinds import TRAINING
from models_registry.training.models import Recipe, TrainingRun
from models_registry.training.plan import check_data, choose_settings, snapshot_facts


def _check_model_name(name: str) -> None:
    field = MLModel._meta.get_field("name")
    try:
        field.run_validators(name)
        if len(name) > field.max_length:
            raise ValidationError(f"At most {field.max_length} characters.")
    except ValidationError as error:
        raise ValidationError({"model": error.messages}) from None


def training_start(
    *,
    snapshot: DatasetSnapshot,
    model_name: str,
    recipe: str = Recipe.DEFAULT,
    settings: dict | None = None,
    base: ModelVersion | None = None,
    requested_by: AbstractBaseUser | None = None,
) -> TrainingRun:
    """Check the snapshot and the settings, choose what the engineer left open, queue the run.

    Refused before any job exists: an unknown recipe or setting, a setting out
    of range, a snapshot with one label, an empty train or validation split,
    a label with too few images for its splits, an unusable model name, a
    fine-tuning base without a convolutional part to reuse.
    """
    if recipe not in Recipe.values:
        raise ValidationError({"recipe": f"'{recipe}' is not one of {', '.join(Recipe.values)}."})
    if recipe == Recipe.FINETUNE and base is None:
        raise ValidationError({"base": "Fine-tuning needs a base version to start from."})
    if recipe != Recipe.FINETUNE and base is not None:
        raise ValidationError({"base": "A base version is for the 'finetune' recipe."})
    base_input = check_base(base) if base is not None else None
    if settings is not None and not isinstance(settings, dict):
        raise ValidationError({"settings": "Give the settings as an object of name: value."})
    _check_model_name(model_name)
    facts = snapshot_facts(snapshot)
    check_data(facts, snapshot)
    chosen = choose_settings(facts, settings, base_input)
    user = requested_by if requested_by is not None and requested_by.is_authenticated else None
    with transaction.atomic():
        run = TrainingRun.objects.create(
            snapshot=snapshot,
            model_name=model_name,
            recipe=recipe,
            settings_requested=dict(settings or {}),
            settings_chosen=chosen,
            parent=base,
            requested_by=user,
        )
        run.job = job_enqueue(
            kind=TRAINING, target=run, requested_by=user, payload={"training_run": run.pk}
        )
        run.save(update_fields=["job"])
    return run


def training_cancel(*, run: TrainingRun) -> TrainingRun:
    """Stop a queued or running training; its process is killed within about a second.

    Refused once the trained version is registered and ready (delete the
    version instead), so a run is never cancelled with a version left behind.
    """
    with transaction.atomic():
        locked = (
            TrainingRun.objects.select_for_update(of=("self",), no_key=True)
            .select_related("job")
            .get(pk=run.pk)
        )
        if locked.job is None or locked.job.state not in (JobState.QUEUED, JobState.RUNNING):
            state = locked.job.state if locked.job else "unknown"
            raise ValidationError({"training": f"Training {run.pk} is {state}; nothing to cancel."})
        if locked.version_id and locked.version.status == VersionStatus.READY:
            raise ValidationError(
                {"training": f"Training {run.pk} already registered {locked.version}."}
            )
        job_cancel(job=locked.job)
    run.refresh_from_db()
    return run
