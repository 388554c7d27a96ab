"""Retrain plans: one action adds the newly verified frames to the plan's dataset, freezes
a snapshot and starts a training run on it.

Reading verified frames is the inspection app's (the job kind ``retrain`` is declared
there, like "Dataset from verified inspections"); the registry checks the plan and
queues the job by its kind's name.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from common.jobs import job_enqueue
from common.models import Job, JobState
from models_registry.training.models import RetrainPlan
from models_registry.training.plan import SETTINGS

RETRAIN = "retrain"  # the job kind; its run lives in inspection


def check_plan_settings(settings: dict) -> dict:
    """The plan's overrides, checked as a training start checks them."""
    if not isinstance(settings, dict):
        raise ValidationError({"settings_requested": "Give an object of settings."})
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValidationError({"settings_requested": f"Unknown setting(s): {', '.join(unknown)}."})
    try:
        return {name: SETTINGS[name].check(name, value) for name, value in settings.items()}
    except ValidationError as error:
        raise ValidationError({"settings_requested": error.messages}) from None


def retrain_start(*, plan: RetrainPlan, requested_by: AbstractBaseUser | None = None) -> Job:
    """Queue the plan's retraining; refused while one of it is still queued or running."""
    check_plan_settings(plan.settings_requested)
    busy = Job.objects.filter(
        kind=RETRAIN,
        payload__plan=plan.pk,
        state__in=[JobState.QUEUED, JobState.RUNNING],
    ).exists()
    if busy:
        raise ValidationError({"plan": f"{plan} is already under way."})
    return job_enqueue(
        kind=RETRAIN, target=plan, requested_by=requested_by, payload={"plan": plan.pk}
    )
