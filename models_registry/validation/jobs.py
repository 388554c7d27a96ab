"""Validation as a job of kind "validation": the version page follows its steps live.

The task ``models_registry.tasks.validate_version`` (what uploads and
re-validations enqueue) makes the job and runs it at once; a failed job can
also be run again from the jobs admin. The steps with their times are kept in
the job's ``result`` while it runs (``{"steps": [...], "current": key}``) and
after it ends.
"""

import time

from django.contrib.contenttypes.models import ContentType

from common.jobs import JobFailed, job_progress, job_run, register_job_kind
from common.models import Job, JobState
from models_registry.choices import ArtifactFormat, VersionStatus
from models_registry.models import ModelVersion
from models_registry.validation.progress import DONE, RUNNING, SKIPPED, Snapshot, ValidationProgress

VALIDATION = "validation"
HEARTBEAT_SECONDS = 5.0  # an unchanged step still tells the sweep the worker is alive


def register() -> None:
    register_job_kind(
        VALIDATION,
        queue="validation",
        run="models_registry.validation.jobs.run_validation",
        cleanup="models_registry.validation.jobs.cleanup_validation",
    )


def validation_jobs(version: ModelVersion):
    """The version's validation jobs, newest first."""
    return Job.objects.filter(
        kind=VALIDATION,
        target_type=ContentType.objects.get_for_model(ModelVersion),
        target_id=str(version.pk),
    ).order_by("-created")


def validation_run_now(version_id: int) -> str:
    """Make a validation job for the version and run it here (the task worker's entry point)."""
    job = Job.objects.create(
        kind=VALIDATION,
        queue="validation",
        target_type=ContentType.objects.get_for_model(ModelVersion),
        target_id=str(version_id),
        payload={"version": version_id},
    )
    return job_run(str(job.pk))


class _Publisher:
    """Writes a run's steps to its job: progress and message, and the steps into ``result``."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.last: Snapshot | None = None
        self.last_write = 0.0

    def __call__(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        if snapshot == self.last and now - self.last_write < HEARTBEAT_SECONDS:
            return
        steps = snapshot["steps"]
        finished = sum(step["state"] in (DONE, SKIPPED) for step in steps)
        running = next((step["name"] for step in steps if step["state"] == RUNNING), "")
        job_progress(self.job, finished / len(steps), running, force=True)  # JobLost: stop
        if snapshot != self.last:
            # Only this run's row: a job swept or claimed again is no longer ours to write.
            Job.objects.filter(
                pk=self.job.pk, attempt=self.job.attempt, state=JobState.RUNNING
            ).update(result=snapshot)
        self.last, self.last_write = snapshot, now


def run_validation(job: Job) -> dict:
    """Validate the job's version; the job fails with the reason when the version is invalid."""
    from models_registry.validation.service import validate_version_now

    version = ModelVersion.objects.filter(pk=job.target_id).first()
    if version is None:
        raise JobFailed("The version to validate no longer exists.")
    if version.deployments.filter(is_active=True).exists():
        # A re-run from the jobs list must not swap the files a station is serving.
        raise JobFailed(f"{version} serves a station now; deploy another version there first.")
    progress = ValidationProgress(
        keras=version.artifact_format == ArtifactFormat.KERAS, publish=_Publisher(job)
    )
    version = validate_version_now(version.pk, progress=progress)
    outcome = {"status": version.status, **progress.snapshot()}
    if version.status != VersionStatus.READY:
        raise JobFailed(version.status_reason, result=outcome)
    return outcome


def cleanup_validation(job: Job) -> None:
    """The worker died mid-run (the sweep failed the job): the version says so, not 'validating'."""
    ModelVersion.objects.filter(pk=job.target_id, status=VersionStatus.VALIDATING).update(
        status=VersionStatus.INVALID,
        status_reason="The validation worker stopped before the end; validate again.",
    )
