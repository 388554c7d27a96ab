"""Downloads: empty periods, background jobs and who may fetch them, streaming, hostile text."""

import csv
import io
import warnings
from datetime import timedelta

import openpyxl
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import AsyncClient
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from common.jobs import job_enqueue, job_run, run_job
from common.models import Job
from inspection.models import Inspection
from inspection.services import verification_record
from reports import exports, rollups, selectors
from reports.filters import report_filters
from reports.jobs import export_file_name
from tests import factories
from tests.conftest import committed_db, stored_files
from tests.reports import expected
from tests.reports.conftest import RANGE

EMPTY = {"from": "2025-01-01", "to": "2025-01-03"}


def workbook_of(response):
    return openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))


def exported_files(media) -> list[str]:
    return [name for name in stored_files(media) if name.startswith("exports/")]


def run_worker(queues: str):
    call_command(
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--no-reload",
        "--queue-name",
        queues,
        verbosity=0,
    )


@pytest.fixture
def viewer(known_plant):
    return factories.viewer(username="viewer1")


def test_empty_period_gives_a_valid_workbook_with_headers_and_zeros(client, known_plant):
    client.force_login(factories.viewer())
    book = workbook_of(client.get("/reports/export.xlsx", EMPTY))
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert summary["Frames"] == 0
    assert summary["Defective"] == 0
    assert summary["Defect rate"] is None  # nothing to divide: empty, not a made-up 0 %
    daily = list(book["Daily trend"].iter_rows(values_only=True))
    assert daily[0][:2] == ("Date", "Frames")
    assert [row[1] for row in daily[1:]] == [0, 0, 0]  # one zero row per day of the range
    for title in (
        "By shift",
        "Pareto",
        "Model versions",
        "Lab against line",
        "Inspectors",
        "Verification log",
        "Inspections",
    ):
        rows = list(book[title].iter_rows(values_only=True))
        assert len(rows) == 1 and rows[0][0], title  # the header row alone
    assert list(book["Confusion matrix"].iter_rows(values_only=True)) == [
        ("No verified frames in this period.",)
    ]
    body = b"".join(client.get("/reports/export.csv", EMPTY).streaming_content).decode()
    assert body.strip() == ",".join(column.key for column in exports.RAW_COLUMNS)
    totals = client.get("/api/v1/reports/summary/", EMPTY).json()["totals"]
    assert totals["frames"] == 0 and totals["defect_rate"] is None


@committed_db  # the worker reconnects
def test_large_export_runs_in_the_background_and_only_its_requester_downloads_it(
    client, viewer, settings, _media_root
):
    settings.LINESIGHT = {**settings.LINESIGHT, "EXPORT_INLINE_MAX_ROWS": 10}  # 13 + 9 rows
    client.force_login(viewer)
    response = client.get("/reports/export.xlsx", RANGE)
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/reports/exports/{job.pk}/"
    assert (job.kind, job.queue, job.state) == ("report_export", "exports", "queued")
    assert (job.requested_by, job.payload) == (viewer, {"filters": RANGE, "format": "xlsx"})
    page = client.get(response["Location"]).content.decode()
    assert "Queued" in page
    assert f'data-job-url="/api/v1/jobs/{job.pk}/"' in page and "export_job.js" in page
    assert client.get(f"/api/v1/jobs/{job.pk}/").json()["state"] == "queued"
    assert client.get(f"/reports/exports/{job.pk}/download/").status_code == 404  # not ready

    run_worker("default,validation")  # other queues' workers leave an export alone
    job.refresh_from_db()
    assert job.state == "queued"
    run_worker("exports")

    job.refresh_from_db()
    assert job.state == "done", job.error
    rows = expected.TOTALS["frames"] + expected.VERIFICATION_LOG_SIZE
    assert exported_files(_media_root) == [f"exports/{job.pk}.xlsx"]
    body = client.get(f"/api/v1/jobs/{job.pk}/").json()  # what the export page polls
    assert (body["state"], body["progress"], body["requested_by"]) == ("done", 1.0, "viewer1")
    assert body["result"] == {
        "file": f"exports/{job.pk}.xlsx",
        "row_count": rows,
        "filename": "linesight-report-2026-03-28-to-2026-03-29.xlsx",
        "download_url": f"/reports/exports/{job.pk}/download/",
    }
    page = client.get(f"/reports/exports/{job.pk}/").content.decode()
    assert f"Ready: {rows} rows" in page and 'id="export-download"' in page
    assert "export_job.js" not in page and "refresh" not in page  # nothing left to wait for
    report_page = client.get("/reports/", RANGE).content.decode()
    assert f'href="/reports/exports/{job.pk}/"' in report_page  # among the person's exports
    download = client.get(f"/reports/exports/{job.pk}/download/")
    assert download.status_code == 200
    assert "linesight-report-2026-03-28-to-2026-03-29.xlsx" in download["Content-Disposition"]
    book = workbook_of(download)
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert summary["Frames"] == expected.TOTALS["frames"]
    assert summary["Defect rate"] == pytest.approx(expected.TOTALS["defect_rate"])

    client.force_login(factories.viewer())  # another viewer: the job is not theirs
    assert client.get(f"/reports/exports/{job.pk}/").status_code == 404
    assert client.get(f"/reports/exports/{job.pk}/download/").status_code == 404
    assert client.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    client.force_login(factories.inspector())  # no reports permission at all
    assert client.get(f"/reports/exports/{job.pk}/download/").status_code == 403
    client.logout()
    assert client.get(f"/reports/exports/{job.pk}/download/").status_code == 302


def _export_job(user, filters=RANGE) -> Job:
    return job_enqueue(kind="report_export", requested_by=user, payload={"filters": filters})


def test_export_job_whose_filters_no_longer_hold_fails_with_the_reason(viewer, _media_root):
    job = _export_job(viewer, {**RANGE, "line": "GONE"})
    assert job_run(str(job.pk)) == "failed"
    job.refresh_from_db()
    assert job.state == "failed"
    assert job.error == "Unknown line 'GONE'."
    assert job.result == {}
    assert exported_files(_media_root) == []
    assert job_run(str(job.pk)) == "not claimed (failed)"  # delivered twice: left as it is
    job.refresh_from_db()
    assert (job.state, job.attempt) == ("failed", 1)


@committed_db
def test_an_export_delivered_twice_builds_its_workbook_once(
    viewer, _media_root, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = _export_job(viewer)
    run_job.using(queue_name="exports").enqueue(str(job.pk))  # the same job sent again
    assert DBTaskResult.objects.filter(queue_name="exports").count() == 2

    run_worker("exports")

    outcomes = sorted(DBTaskResult.objects.values_list("return_value", flat=True))
    assert outcomes == ["done", "not claimed (done)"]
    job.refresh_from_db()
    assert (job.state, job.attempt) == ("done", 1)
    assert exported_files(_media_root) == [f"exports/{job.pk}.xlsx"]


def test_an_export_whose_worker_died_is_failed_by_the_sweep_and_runs_again(
    client, viewer, _media_root, django_capture_on_commit_callbacks
):
    job = _export_job(viewer)
    # A worker claimed it, began saving the workbook, and was killed: its heartbeat stopped.
    long_ago = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(
        state="running", started=long_ago, heartbeat=long_ago, attempt=1, progress=0.95
    )
    default_storage.save(export_file_name(job), ContentFile(b"PK\x03\x04 half a workbook"))
    assert exported_files(_media_root) == [f"exports/{job.pk}.xlsx"]

    client.force_login(viewer)
    body = client.get(f"/api/v1/jobs/{job.pk}/").json()  # the page's poll runs the sweep
    assert body["state"] == "failed" and "no heartbeat" in body["error"]
    assert exported_files(_media_root) == []  # the partial workbook is gone
    page = client.get(f"/reports/exports/{job.pk}/").content.decode()
    assert "The export failed" in page and "Run the export again" in page
    assert client.get(f"/reports/exports/{job.pk}/download/").status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/reports/exports/{job.pk}/run-again/")
    assert response.status_code == 302 and response["Location"] == f"/reports/exports/{job.pk}/"
    job.refresh_from_db()
    assert job.state == "queued"
    assert job_run(str(job.pk)) == "done"
    job.refresh_from_db()
    assert job.attempt == 2 and job.result["row_count"] == (
        expected.TOTALS["frames"] + expected.VERIFICATION_LOG_SIZE
    )
    book = workbook_of(client.get(f"/reports/exports/{job.pk}/download/"))
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert summary["Frames"] == expected.TOTALS["frames"]
    assert exported_files(_media_root) == [f"exports/{job.pk}.xlsx"]


def test_the_workbook_reports_its_rows_as_it_writes_them(known_plant, monkeypatch, tmp_path):
    monkeypatch.setattr(exports, "PROGRESS_EVERY_ROWS", 5)
    seen: list[int] = []
    rows = exports.write_workbook(
        report_filters(RANGE), str(tmp_path / "r.xlsx"), on_rows=seen.append
    )
    assert rows == expected.TOTALS["frames"] + expected.VERIFICATION_LOG_SIZE  # 13 + 9
    assert seen == [5, 10, 15, 20]  # a running total across the log and the inspections


@committed_db
async def test_csv_streams_under_asgi_without_buffering(monkeypatch):
    from asgiref.sync import sync_to_async
    from django.db import connection, connections

    # The request runs in a thread of its own: let it close its connection when
    # done, so the test database can be dropped (persistent connections are on).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)

    from tests.reports.conftest import build_known_plant

    await sync_to_async(build_known_plant)()  # committed: the view reads it from another thread
    user = await sync_to_async(factories.viewer)()
    client = AsyncClient()
    await client.aforce_login(user)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django warns when it must buffer a sync iterator
        response = await client.get("/reports/export.csv", RANGE)
        assert response.status_code == 200
        assert response.is_async
        chunks = [chunk async for chunk in response.streaming_content]
    await sync_to_async(connections.close_all)()  # those this test's own sync calls opened
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert len(rows) == expected.TOTALS["frames"]
    assert sum(row["defective"] == "true" for row in rows) == expected.TOTALS["defective"]


def test_text_typed_by_people_never_becomes_a_formula(client, known_plant):
    frame = known_plant.frames.g6
    Inspection.objects.filter(pk=frame.pk).update(
        serial='=HYPERLINK("http://evil.example","x")', lot="@SUM(1+1)\x07bell"
    )
    verification_record(
        inspection=frame, inspector=known_plant.inspectors[0], decision="confirm", comment="=1+1"
    )
    client.force_login(factories.viewer())
    book = workbook_of(client.get("/reports/export.xlsx", RANGE))
    raw = {row[0].value: row for row in book["Inspections"].iter_rows(min_row=2)}
    serial, lot = raw[frame.pk][17], raw[frame.pk][18]
    assert (serial.data_type, serial.value) == ("s", '=HYPERLINK("http://evil.example","x")')
    assert lot.value == "@SUM(1+1)bell"  # the control character xlsx cannot hold is dropped
    comment = next(
        row[12] for row in book["Verification log"].iter_rows(min_row=2) if row[1].value == frame.pk
    )
    assert (comment.data_type, comment.value) == ("s", "=1+1")
    rows = list(
        csv.DictReader(
            io.StringIO(
                b"".join(client.get("/reports/export.csv", RANGE).streaming_content).decode()
            )
        )
    )
    row = next(r for r in rows if r["id"] == str(frame.pk))
    assert row["serial"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["lot"].startswith("'@SUM")


def test_rows_past_the_sheet_limit_continue_on_a_new_sheet(known_plant, monkeypatch, tmp_path):
    monkeypatch.setattr(exports, "MAX_SHEET_ROWS", 5)
    path = tmp_path / "report.xlsx"
    exports.write_workbook(report_filters(RANGE), str(path))
    book = openpyxl.load_workbook(path)
    parts = [name for name in book.sheetnames if name.startswith("Inspections")]
    assert parts == ["Inspections", "Inspections 2", "Inspections 3"]
    sizes = [book[name].max_row - 1 for name in parts]
    assert sizes == [5, 5, 3]
    assert all(book[name].auto_filter.ref for name in parts)


def test_each_table_is_one_query(known_plant, django_assert_num_queries):
    filters = report_filters(RANGE)
    filters.time_zone  # noqa: B018 - resolved once, outside the counts below
    rollups.report_sources(filters)  # where the figures come from: once per filters object
    selectors.date_index_pays(filters)  # asked once (one query on SQLite), outside the counts
    with django_assert_num_queries(1):
        selectors.totals(filters)
    with django_assert_num_queries(1):
        selectors.volume(filters, by="day")
    for by in ("shift", "line", "station", "product"):
        with django_assert_num_queries(2):  # the counts + the names of the groups
            selectors.volume(filters, by=by)
    with django_assert_num_queries(2):  # the counts + the names of the defect types
        selectors.pareto(filters)
    with django_assert_num_queries(2):  # per-version counts + the confusion cells
        versions = selectors.model_versions(filters)
    with django_assert_num_queries(1):  # the latest evaluations of every version at once
        selectors.lab_against_line(versions)
    with django_assert_num_queries(1):
        selectors.agreement_by_day(filters)
    with django_assert_num_queries(1):
        selectors.inspectors(filters)
