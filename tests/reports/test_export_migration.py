"""Upgrading moves a plant's ExportJob rows to shared jobs: finished exports stay downloadable."""

import datetime as dt

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from common.models import Job
from tests import factories
from tests.conftest import committed_db

BEFORE = [("reports", "0001_initial")]
AFTER = [("reports", "0002_exports_on_jobs")]
MARCH = {"from": "2026-03-01", "to": "2026-03-31", "line": "L1"}


def migrate(targets):
    """Run the migrations to ``targets``; returns the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    ContentType.objects.clear_cache()
    return MigrationExecutor(connection).loader.project_state(targets).apps


def _old_exports(apps, user) -> dict:
    ExportJob = apps.get_model("reports", "ExportJob")
    made = dt.datetime(2026, 4, 1, 6, 0, tzinfo=dt.UTC)
    done = ExportJob.objects.create(
        requested_by_id=user.pk,
        filters=MARCH,
        status="done",
        row_count=812_345,
        finished_at=made + dt.timedelta(minutes=4),
    )
    name = default_storage.save(f"exports/{done.pk}.xlsx", ContentFile(b"the March workbook"))
    ExportJob.objects.filter(pk=done.pk).update(file=name, created_at=made)
    failed = ExportJob.objects.create(
        requested_by_id=user.pk, filters=MARCH, status="failed", error="Unknown line 'L9'."
    )
    waiting = ExportJob.objects.create(requested_by_id=user.pk, filters=MARCH, status="queued")
    return {"done": done.pk, "failed": failed.pk, "waiting": waiting.pk, "made": made}


@committed_db
def test_upgrade_turns_exports_into_jobs_and_back(client, _media_root):
    viewer = factories.viewer(username="plant-viewer")
    old = _old_exports(migrate(BEFORE), viewer)
    try:
        migrate(AFTER)
        done = Job.objects.get(pk=old["done"])
        assert (done.kind, done.queue, done.state, done.requested_by) == (
            "report_export",
            "exports",
            "done",
            viewer,
        )
        assert done.created == old["made"] and done.payload == {"filters": MARCH}
        assert done.result["row_count"] == 812_345
        assert done.result["download_url"] == f"/reports/exports/{done.pk}/download/"
        failed = Job.objects.get(pk=old["failed"])
        assert (failed.state, failed.error) == ("failed", "Unknown line 'L9'.")
        waiting = Job.objects.get(pk=old["waiting"])
        assert waiting.state == "failed" and "run it again" in waiting.error

        # The Viewer keeps the reports permission, and the finished workbook downloads as before.
        person = get_user_model().objects.get(pk=viewer.pk)
        assert person.has_perm("reports.view_reports")
        client.force_login(person)
        download = client.get(f"/reports/exports/{done.pk}/download/")
        assert download.status_code == 200
        assert b"".join(download.streaming_content) == b"the March workbook"
        assert "linesight-report-2026-03-01-to-2026-03-31.xlsx" in download["Content-Disposition"]
        assert "Run the export again" in client.get(f"/reports/exports/{waiting.pk}/").text

        apps = migrate(BEFORE)  # and back: the rows are ExportJobs again
        ExportJob = apps.get_model("reports", "ExportJob")
        back = ExportJob.objects.get(pk=old["done"])
        assert (back.status, back.row_count, back.file.name, back.created_at) == (
            "done",
            812_345,
            f"exports/{old['done']}.xlsx",
            old["made"],
        )
        assert ExportJob.objects.count() == 3 and not Job.objects.exists()
        assert get_user_model().objects.get(pk=viewer.pk).has_perm("reports.view_reports")
    finally:  # every app's latest migration again, so the tests after this one find them
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
