"""Background jobs: one model (``common.models.Job``) for every kind of long work.

An app registers each kind it owns once, from its ``AppConfig.ready()``::

    register_job_kind("dataset_import", queue="imports",
                      run="models_registry.datasets.jobs.run_import")

A service creates the row with ``job_enqueue(kind=..., target=..., ...)``; on
commit the job's id goes to the task engine on the kind's queue. A worker
claims the job with a conditional UPDATE (queued -> running), so a task
delivered twice runs once, then calls ``run(job)``. The run reports progress
with ``job_progress`` (which is also its heartbeat), returns a JSON-able dict
(stored in ``job.result``) or raises ``JobFailed`` with a sentence for a
person. ``jobs_sweep`` fails running jobs whose heartbeat went silent (the
worker died); a failed job can be run again with ``job_retry``.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import task

from common.models import FINISHED_STATES, Job, JobState
from common.outbox import JOB_FINISHED, outbox_add

logger = logging.getLogger(__name__)

# Progress writes closer together than this are skipped (the last one always lands).
PROGRESS_MIN_INTERVAL_SECONDS = 0.5
MAX_ERROR_CHARS = 4000


class JobFailed(Exception):
    """Raised by a run function: the job fails with this message, and ``result`` if given."""

    def __init__(self, message: str, *, result: dict | None = None):
        super().__init__(message)
        self.result = result


class JobLost(Exception):
    """The job is no longer this run's (swept as dead, cancelled, or claimed again): stop."""


@dataclass(frozen=True)
class JobKind:
    kind: str
    queue: str
    run: str  # dotted path of run(job) -> dict | None
    cleanup: str = ""  # dotted path of cleanup(job), called when the sweep fails the job


_KINDS: dict[str, JobKind] = {}


def task_queues() -> list[str]:
    return list(settings.TASKS["default"].get("QUEUES", ["default"]))


def register_job_kind(kind: str, *, queue: str, run: str, cleanup: str = "") -> None:
    """Declare a kind of job and the queue it runs on; call from an AppConfig.ready()."""
    if queue not in task_queues():
        raise ImproperlyConfigured(
            f"Job kind '{kind}' wants the task queue '{queue}', which settings.TASKS does not "
            f"declare (queues: {', '.join(task_queues())})."
        )
    _KINDS[kind] = JobKind(kind=kind, queue=queue, run=run, cleanup=cleanup)


def job_kind(kind: str) -> JobKind:
    try:
        return _KINDS[kind]
    except KeyError:
        raise LookupError(f"No job kind '{kind}' is registered.") from None


def registered_job_kinds() -> dict[str, JobKind]:
    return dict(_KINDS)


def _target_fields(target: models.Model | None) -> dict[str, Any]:
    if target is None:
        return {"target_type": None, "target_id": ""}
    return {
        "target_type": ContentType.objects.get_for_model(target),
        "target_id": str(target.pk),
    }


def _send(job_id: str, queue: str) -> None:
    run_job.using(queue_name=queue).enqueue(job_id)


def job_enqueue(
    *,
    kind: str,
    target: models.Model | None = None,
    requested_by: Any = None,
    payload: dict | None = None,
) -> Job:
    """Create a queued job and hand it to the task engine once the transaction commits."""
    spec = job_kind(kind)
    user = requested_by if requested_by is not None and requested_by.is_authenticated else None
    job = Job.objects.create(
        kind=kind,
        queue=spec.queue,
        requested_by=user,
        payload=payload or {},
        **_target_fields(target),
    )
    transaction.on_commit(partial(_send, str(job.pk), spec.queue))
    return job


def job_retry(*, job: Job) -> Job:
    """Queue a failed or cancelled job again, with its payload; its old outcome is cleared."""
    with transaction.atomic():
        updated = Job.objects.filter(
            pk=job.pk, state__in=[JobState.FAILED, JobState.CANCELLED]
        ).update(
            state=JobState.QUEUED,
            progress=0.0,
            message="Queued again",
            error="",
            result={},
            started=None,
            finished=None,
            heartbeat=None,
        )
        if not updated:
            state = Job.objects.filter(pk=job.pk).values_list("state", flat=True).first()
            raise ValidationError(
                {"job": f"Only a failed or cancelled job can be run again; this one is {state}."}
            )
        transaction.on_commit(partial(_send, str(job.pk), job.queue))
    job.refresh_from_db()
    return job


def job_cancel(*, job: Job) -> bool:
    """Cancel a queued or running job; a running one stops at its next progress report."""
    with transaction.atomic():
        cancelled = Job.objects.filter(
            pk=job.pk, state__in=[JobState.QUEUED, JobState.RUNNING]
        ).update(state=JobState.CANCELLED, finished=timezone.now(), message="Cancelled")
        if cancelled:
            _finished_to_outbox(job.pk)
    job.refresh_from_db()
    return bool(cancelled)


def _mine(job: Job):
    """The job's row as long as it is still this run's."""
    return Job.objects.filter(pk=job.pk, attempt=job.attempt, state=JobState.RUNNING)


def job_progress(job: Job, fraction: float, message: str = "", *, force: bool = False) -> None:
    """Record progress (0..1) with a message; doubles as the heartbeat.

    Raises JobLost when the job was swept, cancelled or claimed again meanwhile,
    so a run presumed dead stops instead of overwriting the new state.
    """
    fraction = min(max(float(fraction), 0.0), 1.0)
    now = time.monotonic()
    last = getattr(job, "_last_progress_write", None)
    if not force and last is not None and now - last < PROGRESS_MIN_INTERVAL_SECONDS:
        return
    updated = _mine(job).update(progress=fraction, message=message[:300], heartbeat=timezone.now())
    job._last_progress_write = now
    job.progress, job.message = fraction, message[:300]
    if not updated:
        raise JobLost(str(job.pk))


def _finish(job: Job, **fields: Any) -> bool:
    with transaction.atomic():
        finished = _mine(job).update(finished=timezone.now(), heartbeat=timezone.now(), **fields)
        if finished:
            _finished_to_outbox(job.pk)
    return bool(finished)


def _finished_to_outbox(job_id: Any) -> None:
    """A finished job for the plant's systems (webhooks), in the transaction that ends it.

    Housekeeping that runs on its own (``PERIODIC_JOBS``: rollups every 30 s,
    retention, sweeps) is nobody's news and is left out.
    """
    job = Job.objects.select_related("target_type").get(pk=job_id)
    if job.kind in settings.PERIODIC_JOBS:
        return
    outbox_add(
        JOB_FINISHED,
        scope=None,
        data={
            "job": str(job.pk),
            "kind": job.kind,
            "state": job.state,
            "message": job.message,
            "error": job.error,
            "target": (
                {
                    "type": f"{job.target_type.app_label}.{job.target_type.model}",
                    "id": job.target_id,
                }
                if job.target_type_id
                else None
            ),
            "url": f"/api/v1/jobs/{job.pk}/",
        },
    )


def _claim(job_id: str) -> Job | None:
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING,
        started=now,
        heartbeat=now,
        finished=None,
        progress=0.0,
        message="Started",
        error="",
        attempt=F("attempt") + 1,
    )
    return Job.objects.get(pk=job_id) if claimed else None


def job_run(job_id: str) -> str:
    """Claim and run one job (the task engine's entry point); returns the state it ended in.

    A job that is not queued (already claimed by another delivery, cancelled,
    finished) is left alone.
    """
    job = _claim(job_id)
    if job is None:
        state = Job.objects.filter(pk=job_id).values_list("state", flat=True).first()
        return f"not claimed ({state or 'missing'})"
    try:
        run: Callable[[Job], dict | None] = import_string(job_kind(job.kind).run)
        result = run(job)
    except JobLost:
        return "lost"
    except JobFailed as failure:
        _finish(
            job,
            state=JobState.FAILED,
            error=str(failure)[:MAX_ERROR_CHARS],
            message="Failed",
            result=failure.result or {},
        )
        return JobState.FAILED
    except Exception as error:
        logger.exception("Job %s (%s) failed unexpectedly", job.pk, job.kind)
        text = f"Unexpected error: {type(error).__name__}: {error}"
        _finish(job, state=JobState.FAILED, error=text[:MAX_ERROR_CHARS], message="Failed")
        return JobState.FAILED
    if not _finish(job, state=JobState.DONE, progress=1.0, message="Done", result=result or {}):
        # Swept or cancelled while finishing: what this run wrote belongs to no one.
        _cleanup(job)
        return "lost"
    return JobState.DONE


@task()
def run_job(job_id: str) -> str:
    """The one task that carries a job to a worker; the job's kind decides its queue."""
    return job_run(job_id)


def heartbeat_timeout() -> int:
    return int(settings.JOB_HEARTBEAT_TIMEOUT_SECONDS)


def periodic_jobs_prune(*, keep_days: int | None = None) -> int:
    """Delete finished runs of the periodic kinds older than ``keep_days``
    (``PERIODIC_JOB_KEEP_DAYS``): a refresh every 30 s is thousands of rows a day.
    Returns how many went."""
    keep = settings.PERIODIC_JOB_KEEP_DAYS if keep_days is None else keep_days
    deleted, _ = Job.objects.filter(
        kind__in=list(settings.PERIODIC_JOBS),
        state__in=FINISHED_STATES,
        finished__lt=timezone.now() - timedelta(days=keep),
    ).delete()
    return deleted


def jobs_sweep(*, timeout_seconds: int | None = None) -> int:
    """Fail running jobs whose heartbeat is older than the timeout (their worker died).

    Each job is failed by a conditional UPDATE, so a sweep racing a live
    heartbeat or another sweep fails it at most once. Returns how many failed.
    """
    timeout = heartbeat_timeout() if timeout_seconds is None else timeout_seconds
    now = timezone.now()
    stale = Job.objects.filter(
        state=JobState.RUNNING, heartbeat__lt=now - timedelta(seconds=timeout)
    )
    failed = 0
    for job in stale.only("pk", "kind", "attempt", "heartbeat"):
        with transaction.atomic():
            updated = Job.objects.filter(
                pk=job.pk, state=JobState.RUNNING, attempt=job.attempt, heartbeat=job.heartbeat
            ).update(
                state=JobState.FAILED,
                finished=now,
                message="Failed",
                error=(
                    f"The worker stopped reporting: no heartbeat for over {timeout} s, so it "
                    "was killed or crashed; run the job again."
                ),
            )
            if updated:
                _finished_to_outbox(job.pk)
        if updated:
            failed += 1
            _cleanup(job)
    return failed


def _cleanup(job: Job) -> None:
    try:
        spec = job_kind(job.kind)
        if spec.cleanup:
            import_string(spec.cleanup)(Job.objects.get(pk=job.pk))
    except Exception:  # a cleanup that fails must not stop the sweep of other jobs
        logger.exception("Cleanup of swept job %s (%s) failed", job.pk, job.kind)
