"""Jobs in admin, and the worker processes run_workers starts (one per queue group)."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from common.jobs import job_enqueue, register_job_kind
from common.models import Job
from tests import factories, servers

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def echo_kind():
    register_job_kind("test_echo", queue="imports", run="tests.common.job_kinds.run_echo")


def test_admin_lists_jobs_of_every_kind_with_progress_and_fails_dead_ones(client, settings):
    settings.JOB_HEARTBEAT_TIMEOUT_SECONDS = 60
    job = job_enqueue(kind="test_echo")
    long_ago = timezone.now() - timedelta(minutes=5)
    Job.objects.filter(pk=job.pk).update(
        state="running", progress=0.42, heartbeat=long_ago, attempt=1
    )
    client.force_login(factories.engineer())
    page = client.get("/admin/common/job/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "test_echo" in html and 'value="42"' in html
    job.refresh_from_db()
    assert job.state == "failed"  # swept before listing: its worker went silent
    assert client.get(f"/admin/common/job/{job.pk}/change/").status_code == 200
    assert client.get("/admin/common/job/add/").status_code == 403


def test_inspectors_do_not_see_the_job_admin(client):
    client.force_login(factories.inspector(is_staff=True))
    assert client.get("/admin/common/job/").status_code == 403


def _children_of(pid: int) -> list[str]:
    """Command lines of the worker processes (``manage.py worker``) ``pid`` started."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    lines = []
    for child in out.stdout.split():
        try:
            args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        lines.append(" ".join(arg.decode() for arg in args))
    return [line for line in lines if "manage.py worker" in line]


@pytest.mark.slow
def test_run_workers_starts_one_worker_per_queue_group_and_stops_them(tmp_path, settings):
    env = servers.worker_env(tmp_path)
    supervisor = subprocess.Popen(
        [sys.executable, "manage.py", "run_workers", "--verbosity", "0"],
        cwd=servers.PROJECT_ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[str] = []
        while time.monotonic() < deadline and len(workers) < len(settings.TASK_WORKER_GROUPS):
            time.sleep(0.2)
            workers = _children_of(supervisor.pid)
        queues = sorted(line.split("--queue-name ")[1].split()[0] for line in workers)
        assert queues == sorted(",".join(group) for group in settings.TASK_WORKER_GROUPS)
        assert "evaluations,training" in queues and "default,validation,exports" in queues
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
        assert _children_of(supervisor.pid) == []
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
