"""Champion/challenger before promotion: a trained version against what serves a station.

Two comparisons, both run as jobs, never in the request:

- on the run's snapshot: the evaluation's side-by-side run (champion = the
  station's deployed version, challenger = the trained one) on the test
  split, judged by the station's thresholds;
- on the station's latest verified production frames, the inspector's final
  word as truth: the job kind ``champion_challenger``, declared by the
  inspection app (it reads inspections; the registry names it only).

Promotion is never automatic: "Deploy challenger" opens the ordinary
activation (``deployment_activate``: history, rollback).
"""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from common.jobs import job_enqueue
from common.models import Job, JobState
from masterdata.models import Station
from models_registry.choices import VersionStatus
from models_registry.evaluation.services import evaluation_start
from models_registry.models import Deployment
from models_registry.training.models import TrainingRun

CHAMPION_CHALLENGER = "champion_challenger"  # the job kind; its run lives in inspection
DEFAULT_FRAMES, MAX_FRAMES = 500, 5000


def champion_deployment(station: Station) -> Deployment | None:
    """What serves the station now: its station-wide deployment, else a product's one."""
    active = Deployment.objects.filter(station=station, is_active=True).select_related(
        "version__model"
    )
    return active.filter(product__isnull=True).first() or active.order_by("pk").first()


def _check(run: TrainingRun, station: Station, frames: int) -> Deployment:
    if run.state != JobState.DONE or run.version_id is None:
        raise ValidationError(
            {"training": f"Training {run.pk} is {run.state}; compare it once it has a version."}
        )
    if run.version.status != VersionStatus.READY:
        raise ValidationError({"training": f"{run.version} is not ready."})
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
        raise ValidationError({"frames": f"Give a whole number of frames from 1 to {MAX_FRAMES}."})
    deployment = champion_deployment(station)
    if deployment is None:
        raise ValidationError(
            {"station": f"Nothing is deployed to {station.code}; there is no champion to beat."}
        )
    if deployment.version_id == run.version_id:
        raise ValidationError(
            {"station": f"{run.version} already serves {station.code}; it is the champion."}
        )
    return deployment


def training_compare_start(
    *,
    run: TrainingRun,
    station: Station,
    frames: int = DEFAULT_FRAMES,
    requested_by: AbstractBaseUser | None = None,
) -> Job:
    """Queue both comparisons of ``run``'s version with ``station``'s deployed version.

    Refused (nothing queued) when the run has no ready version, nothing serves
    the station, the version already serves it, or the snapshot cannot be
    evaluated with both versions.
    """
    deployment = _check(run, station, frames)
    with transaction.atomic():
        evaluation = evaluation_start(
            version=deployment.version,
            challenger=run.version,
            snapshot=run.snapshot,
            split="test" if run.snapshot.items.filter(split="test").exists() else "validation",
            deployment=deployment,
            requested_by=requested_by,
        )
        return job_enqueue(
            kind=CHAMPION_CHALLENGER,
            target=run,
            requested_by=requested_by,
            payload={
                "training_run": run.pk,
                "station": station.pk,
                "deployment": deployment.pk,
                "evaluation": evaluation.pk,
                "frames": frames,
            },
        )


def training_comparisons(run: TrainingRun):
    """The run's comparison jobs, newest first."""
    from django.contrib.contenttypes.models import ContentType

    return Job.objects.filter(
        kind=CHAMPION_CHALLENGER,
        target_type=ContentType.objects.get_for_model(TrainingRun),
        target_id=str(run.pk),
    ).order_by("-created")
