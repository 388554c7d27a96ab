"""Orphans swept: frame files without a row, rows without their file, stuck validations.

Frames are posted through the real API; the crash between the file and the
row is made by hand (a file saved with no row, a file deleted under its
row), aged past the grace period the way time would age it.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from common.jobs import job_enqueue, job_run
from common.models import Job, JobState
from inspection.models import Inspection
from inspection.orphans import STUCK_VALIDATION_REASON, orphans_sweep
from models_registry.choices import VersionStatus
from models_registry.models import ModelVersion
from models_registry.validation.jobs import VALIDATION
from tests import servers
from tests.conftest import committed_db, stored_files
from tests.images import GREEN, RED, frame_bytes
from tests.inspection.test_api_frames import post_frame
from tests.registry import ready_version

TWO_HOURS_AGO = time.time() - 2 * 3600


def _age_file(media, name: str) -> None:
    os.utime(media / name, (TWO_HOURS_AGO, TWO_HOURS_AGO))


def _age_row(pk: int) -> None:
    Inspection.objects.filter(pk=pk).update(received_at=timezone.now() - dt.timedelta(hours=2))


@pytest.fixture
def crashed_line(line_setup, api_client, _media_root):
    """Two stored frames; an old and a fresh file without a row; an old and a fresh row
    whose file is gone."""
    ids = []
    for colour in (RED, GREEN, RED, GREEN):
        response = post_frame(api_client, token=line_setup["token"], image=frame_bytes(colour))
        assert response.status_code == 201
        ids.append(response.json()["id"])
    kept, kept_too, lost_old, lost_fresh = Inspection.objects.filter(pk__in=ids).order_by("pk")
    for row in (kept, kept_too, lost_old):
        _age_row(row.pk)
    for row in (kept, kept_too, lost_old, lost_fresh):
        _age_file(_media_root, row.image.name)
    folder = os.path.dirname(kept.image.name)
    old_orphan = default_storage.save(f"{folder}/crashed.jpg", ContentFile(frame_bytes(RED)))
    _age_file(_media_root, old_orphan)
    fresh_orphan = default_storage.save(f"{folder}/being-written.jpg", ContentFile(b"x"))
    default_storage.delete(lost_old.image.name)
    default_storage.delete(lost_fresh.image.name)
    return {
        "kept": [kept, kept_too],
        "lost_old": lost_old,
        "lost_fresh": lost_fresh,
        "old_orphan": old_orphan,
        "fresh_orphan": fresh_orphan,
    }


def test_a_dry_run_reports_orphans_and_changes_nothing(crashed_line, _media_root):
    before = stored_files(_media_root)

    report = orphans_sweep(dry_run=True, grace_seconds=3600)

    assert report.files_without_row == 1
    assert report.files_sample == [crashed_line["old_orphan"]]
    assert report.rows_without_file == 1
    assert report.rows_sample == [crashed_line["lost_old"].pk]
    assert stored_files(_media_root) == before
    assert Inspection.objects.get(pk=crashed_line["lost_old"].pk).image.name != ""


def test_the_sweep_deletes_old_orphan_files_and_marks_rows_whose_file_is_gone(
    crashed_line, _media_root, api_client, line_setup
):
    report = orphans_sweep(grace_seconds=3600)

    assert (report.files_without_row, report.rows_without_file) == (1, 1)
    files = stored_files(_media_root)
    assert crashed_line["old_orphan"] not in files
    assert crashed_line["fresh_orphan"] in files, "a file being written is never touched"
    for row in crashed_line["kept"]:
        assert row.image.name in files
    lost = Inspection.objects.get(pk=crashed_line["lost_old"].pk)
    assert lost.image.name == "", "the row is kept, its image marked missing"
    assert lost.verdict == crashed_line["lost_old"].verdict
    fresh = Inspection.objects.get(pk=crashed_line["lost_fresh"].pk)
    assert fresh.image.name == crashed_line["lost_fresh"].image.name, "young rows wait"

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    missing = api_client.get(f"/api/v1/inspections/{lost.pk}/image/")
    assert missing.status_code == 404
    assert "missing from storage" in missing.json()["detail"]
    kept = crashed_line["kept"][0]
    assert api_client.get(f"/api/v1/inspections/{kept.pk}/image/").status_code == 200

    again = orphans_sweep(grace_seconds=3600)
    assert (again.files_without_row, again.rows_without_file) == (0, 0)


def test_the_image_of_a_frame_whose_file_vanished_is_a_404_not_a_500(line_setup, api_client):
    response = post_frame(api_client, token=line_setup["token"], image=frame_bytes(RED))
    row = Inspection.objects.get(pk=response.json()["id"])
    default_storage.delete(row.image.name)  # lost before any sweep ran

    answer = api_client.get(f"/api/v1/inspections/{row.pk}/image/")

    assert answer.status_code == 404
    assert f"frame #{row.pk} is missing from storage" in answer.json()["detail"]


def test_the_periodic_sweep_looks_at_recent_days_and_the_command_at_every_frame(
    crashed_line, _media_root
):
    ancient = default_storage.save("frames/2020/01/01/ST1/crashed.jpg", ContentFile(b"jpeg"))
    _age_file(_media_root, ancient)

    recent = orphans_sweep(dry_run=True, grace_seconds=3600, days=2)
    everything = orphans_sweep(dry_run=True, grace_seconds=3600)

    assert recent.files_sample == [crashed_line["old_orphan"]]
    assert sorted(everything.files_sample) == sorted([ancient, crashed_line["old_orphan"]])


def test_the_command_reports_counts_and_names(crashed_line, capsys):
    call_command("orphans_sweep", "--dry-run", "--grace", "3600")
    out = capsys.readouterr().out
    assert "found: 1 frame file(s) without a row, 1 row(s) without their file" in out
    assert crashed_line["old_orphan"] in out
    assert f"frame #{crashed_line['lost_old'].pk} without its file" in out


def _validating(version: ModelVersion, *, uploaded_hours_ago: float) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(
        status=VersionStatus.VALIDATING,
        uploaded_at=timezone.now() - dt.timedelta(hours=uploaded_hours_ago),
    )


def test_a_version_left_validating_by_a_dead_worker_is_failed_with_a_reason(db, settings):
    settings.JOB_HEARTBEAT_TIMEOUT_SECONDS = 300
    abandoned = ready_version(model_name="abandoned")
    _validating(abandoned, uploaded_hours_ago=2)  # validated in a process that died
    just_started = ready_version(model_name="recent")
    _validating(just_started, uploaded_hours_ago=0)
    with_job = ready_version(model_name="queued")
    _validating(with_job, uploaded_hours_ago=2)
    Job.objects.create(
        kind=VALIDATION,
        queue="validation",
        target_id=str(with_job.pk),
        target_type=ContentType.objects.get_for_model(ModelVersion),
        state=JobState.QUEUED,
    )

    report = orphans_sweep(grace_seconds=3600)

    assert report.versions == [abandoned.pk]
    abandoned.refresh_from_db()
    assert abandoned.status == VersionStatus.INVALID
    assert abandoned.status_reason == STUCK_VALIDATION_REASON
    assert ModelVersion.objects.get(pk=just_started.pk).status == VersionStatus.VALIDATING
    assert ModelVersion.objects.get(pk=with_job.pk).status == VersionStatus.VALIDATING


def test_the_sweep_runs_as_a_job_on_the_default_queue(crashed_line, _media_root):
    job = job_enqueue(kind="orphans_sweep")
    assert job.queue == "default"

    assert job_run(str(job.pk)) == JobState.DONE
    job.refresh_from_db()
    assert job.result["files_without_row"] == 1
    assert job.result["rows_without_file"] == 1
    assert crashed_line["old_orphan"] not in stored_files(_media_root)


@committed_db
@pytest.mark.slow
def test_run_workers_sweeps_orphans_periodically(tmp_path, _media_root):
    today = f"{timezone.now():%Y/%m/%d}"
    orphan = default_storage.save(f"frames/{today}/ST9/crashed.jpg", ContentFile(b"jpeg"))
    _age_file(_media_root, orphan)
    # Its media folder is the test's.
    env = servers.worker_env(tmp_path, LINESIGHT_ORPHAN_SWEEP_INTERVAL_SECONDS="1")
    supervisor = subprocess.Popen(
        [sys.executable, "manage.py", "run_workers", "--verbosity", "0"],
        cwd=servers.PROJECT_ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        done = None
        while time.monotonic() < deadline and done is None:
            time.sleep(0.5)
            done = Job.objects.filter(kind="orphans_sweep", state=JobState.DONE).first()
        assert done is not None, list(Job.objects.values("kind", "state", "error"))
        assert done.result["files_without_row"] == 1
        assert orphan not in stored_files(_media_root)
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        try:
            supervisor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(supervisor.pid, signal.SIGKILL)
