"""Dataset imports on the real task worker: run by the imports queue; a killed worker's job."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import transaction

from common.jobs import job_retry, job_run, jobs_sweep
from common.models import Job
from models_registry.datasets.models import DatasetImage
from models_registry.datasets.services import dataset_create, dataset_import_start
from tests import servers
from tests.conftest import committed_db, stored_files
from tests.models_registry.datasets_helpers import as_zip, class_folders


@pytest.fixture
def keep_signal_handlers():
    """db_worker installs its own SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def start_import(name: str, entries: dict[str, bytes]) -> Job:
    dataset = dataset_create(name=name)
    with transaction.atomic():
        return dataset_import_start(
            dataset=dataset, archive=ContentFile(as_zip(entries), name="photos.zip")
        )


@committed_db
def test_the_imports_worker_runs_the_import(keep_signal_handlers):
    job = start_import("worker-set", class_folders({"ok": 3, "crack": 2}))
    call_command(
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--no-reload",
        "--queue-name",
        "default,validation,exports",
        verbosity=0,
    )
    job.refresh_from_db()
    assert job.state == "queued"  # the validation worker never picks up an import
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
    assert job.state == "done", job.error
    assert DatasetImage.objects.filter(dataset__name="worker-set").count() == 5


def worker_process(data_dir) -> subprocess.Popen:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LINESIGHT_")},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LINESIGHT_SECRET_KEY": "worker-test-" + "k" * 50,
        "LINESIGHT_DATA_DIR": str(data_dir),
        "DATABASE_URL": servers.test_database_url(),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--queue-name",
            "imports",
            "--no-reload",
            "--no-startup-delay",
            "--verbosity",
            "0",
        ],
        cwd=servers.PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
@committed_db
def test_an_import_whose_worker_is_killed_fails_by_the_sweep_and_runs_again(tmp_path, _media_root):
    # Large enough that the kill lands well inside the import on a quiet machine too.
    per_class = 2000
    entries = class_folders({"ok": per_class, "crack": per_class})
    job = start_import("killed", entries)
    worker = worker_process(tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.state == "running" and job.progress >= 0.2:
                break
            assert job.state in ("queued", "running"), job.error
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    job.refresh_from_db()
    assert job.state == "running" and job.progress < 1.0  # killed mid-import
    assert len(stored_files(_media_root)) > 1  # images it had stored already

    time.sleep(1.1)
    assert jobs_sweep(timeout_seconds=1) == 1
    job.refresh_from_db()
    assert job.state == "failed" and "no heartbeat" in job.error
    assert DatasetImage.objects.count() == 0
    assert len(stored_files(_media_root)) == 1  # only the upload, kept for the re-run

    job_retry(job=job)
    assert job_run(str(job.pk)) == "done"
    job.refresh_from_db()
    assert job.result["imported"] == 2 * per_class
    assert len(stored_files(_media_root)) == 4 * per_class  # images and thumbnails, nothing else
