"""Background jobs: enqueue on commit, claim once, progress, failure, the dead-worker sweep."""

import signal
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from common.jobs import (
    JobLost,
    job_enqueue,
    job_progress,
    job_retry,
    job_run,
    jobs_sweep,
    register_job_kind,
)
from common.models import Job
from tests import factories
from tests.common import job_kinds
from tests.conftest import committed_db

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def echo_kind():
    register_job_kind(
        "test_echo",
        queue="imports",
        run="tests.common.job_kinds.run_echo",
        cleanup="tests.common.job_kinds.cleanup_echo",
    )
    job_kinds.runs.clear()
    job_kinds.cleaned.clear()


def test_enqueued_job_is_sent_to_its_kinds_queue_only_on_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = job_enqueue(kind="test_echo", payload={"n": 1})
        assert DBTaskResult.objects.count() == 0  # nothing sent before the commit
    assert len(callbacks) == 1
    task = DBTaskResult.objects.get()
    assert task.queue_name == "imports"
    assert task.args_kwargs["args"] == [str(job.pk)]
    assert job.state == "queued" and job.queue == "imports"


def test_a_kind_on_an_undeclared_queue_is_refused():
    with pytest.raises(ImproperlyConfigured, match="nowhere"):
        register_job_kind("bad", queue="nowhere", run="tests.common.job_kinds.run_echo")


def test_a_job_runs_with_progress_and_stores_its_result():
    job = job_enqueue(kind="test_echo", payload={"n": 1})
    assert job_run(str(job.pk)) == "done"
    job.refresh_from_db()
    assert job.state == "done" and job.progress == 1.0 and job.error == ""
    assert job.result["echo"] == {"n": 1}
    # Mid-run, a reader saw the job running at half way with its message.
    assert job.result["seen"] == {"state": "running", "progress": 0.5, "message": "Half way"}
    assert job.started <= job.finished


def test_a_job_delivered_twice_runs_once():
    job = job_enqueue(kind="test_echo")
    assert job_run(str(job.pk)) == "done"
    assert job_run(str(job.pk)) == "not claimed (done)"
    assert job_kinds.runs == [str(job.pk)]
    job.refresh_from_db()
    assert job.attempt == 1


def test_a_run_that_lost_its_job_while_finishing_cleans_up_and_keeps_the_sweeps_verdict():
    job = job_enqueue(kind="test_echo", payload={"swept_while_finishing": True})
    assert job_run(str(job.pk)) == "lost"
    job.refresh_from_db()
    assert job.state == "failed" and job.error == "The worker stopped answering."
    assert job_kinds.cleaned == [str(job.pk)]  # what the run wrote is removed


def test_a_failing_run_records_its_reason_and_report():
    job = job_enqueue(kind="test_echo", payload={"fail": "The archive holds no images."})
    assert job_run(str(job.pk)) == "failed"
    job.refresh_from_db()
    assert job.state == "failed"
    assert job.error == "The archive holds no images."
    assert job.result["seen"]["progress"] == 0.5


def test_an_unexpected_error_fails_the_job_with_its_type():
    job = job_enqueue(kind="test_echo", payload={"crash": True})
    assert job_run(str(job.pk)) == "failed"
    job.refresh_from_db()
    assert job.error == "Unexpected error: ZeroDivisionError: division by zero"


def _as_if_a_worker_died(job: Job, *, seconds_ago: int) -> Job:
    """Claim the job like a worker, then let its heartbeat go silent."""
    long_ago = timezone.now() - timedelta(seconds=seconds_ago)
    Job.objects.filter(pk=job.pk).update(
        state="running", started=long_ago, heartbeat=long_ago, attempt=1
    )
    job.refresh_from_db()
    return job


def test_a_job_whose_worker_died_is_failed_by_the_sweep_and_runs_again(settings):
    settings.JOB_HEARTBEAT_TIMEOUT_SECONDS = 60
    job = job_enqueue(kind="test_echo", payload={"n": 2})
    dead = _as_if_a_worker_died(job, seconds_ago=61)
    alive = _as_if_a_worker_died(job_enqueue(kind="test_echo"), seconds_ago=5)

    assert jobs_sweep() == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.state == "failed" and "no heartbeat for over 60 s" in dead.error
    assert alive.state == "running"
    assert job_kinds.cleaned == [str(dead.pk)]

    # The presumed-dead worker wakes up: it may not overwrite the failure.
    with pytest.raises(JobLost):
        job_progress(dead, 0.9, "still here", force=True)

    job_retry(job=dead)
    dead.refresh_from_db()
    assert dead.state == "queued" and dead.error == ""
    assert job_run(str(dead.pk)) == "done"
    dead.refresh_from_db()
    assert dead.state == "done" and dead.attempt == 2 and dead.result["echo"] == {"n": 2}


def test_only_failed_or_cancelled_jobs_run_again():
    job = job_enqueue(kind="test_echo")
    with pytest.raises(ValidationError, match="queued"):
        job_retry(job=job)


def test_sweep_command_fails_dead_jobs(settings, capsys):
    dead = _as_if_a_worker_died(job_enqueue(kind="test_echo"), seconds_ago=1000)
    call_command("jobs_sweep", "--timeout", "600")
    dead.refresh_from_db()
    assert dead.state == "failed"
    assert "1 job(s) failed" in capsys.readouterr().out


def test_job_api_shows_state_progress_and_error(api_client):
    engineer = factories.engineer()
    job = job_enqueue(kind="test_echo", payload={"fail": "Nothing to import."})
    job_run(str(job.pk))
    api_client.force_authenticate(engineer)
    response = api_client.get(f"/api/v1/jobs/{job.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(job.pk)
    assert body["state"] == "failed" and body["error"] == "Nothing to import."
    assert body["kind"] == "test_echo" and body["progress"] == 0.5
    assert {"created", "started", "finished", "message", "target"} <= set(body)


def test_job_api_reads_a_dead_job_as_failed(api_client, settings):
    settings.JOB_HEARTBEAT_TIMEOUT_SECONDS = 60
    engineer = factories.engineer()
    dead = _as_if_a_worker_died(job_enqueue(kind="test_echo"), seconds_ago=120)
    api_client.force_authenticate(engineer)
    body = api_client.get(f"/api/v1/jobs/{dead.pk}/").json()
    assert body["state"] == "failed" and "no heartbeat" in body["error"]


def test_a_job_is_hidden_from_users_who_neither_asked_nor_may_view_jobs(api_client):
    owner = factories.inspector(username="owner")
    other = factories.inspector(username="other")
    job = job_enqueue(kind="test_echo", requested_by=owner)
    api_client.force_authenticate(other)
    assert api_client.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    api_client.force_authenticate(owner)
    assert api_client.get(f"/api/v1/jobs/{job.pk}/").status_code == 200


@pytest.fixture
def keep_signal_handlers():
    """db_worker installs its own SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@committed_db
def test_the_task_worker_of_the_kinds_queue_runs_the_job(keep_signal_handlers):
    with transaction.atomic():
        job = job_enqueue(kind="test_echo", payload={"n": 3})
    # A worker of other queues leaves it alone...
    call_command(
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--no-reload",
        "--queue-name",
        "evaluations,training",
        verbosity=0,
    )
    job.refresh_from_db()
    assert job.state == "queued"
    # ...the worker of its queue runs it.
    call_command(
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--no-reload",
        "--queue-name",
        "imports",
        verbosity=0,
    )
    job.refresh_from_db()
    assert job.state == "done" and job.result["echo"] == {"n": 3}
