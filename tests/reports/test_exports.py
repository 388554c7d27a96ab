"""Downloads: empty periods, background jobs and who may fetch them, streaming, hostile text."""

import csv
import io
import warnings

import openpyxl
import pytest
from django.core.management import call_command
from django.test import AsyncClient

from inspection.models import Inspection
from inspection.services import verification_record
from reports import exports, selectors
from reports.filters import report_filters
from reports.models import ExportJob, ExportStatus
from tests import factories
from tests.conftest import committed_db, stored_files
from tests.reports import expected
from tests.reports.conftest import RANGE

EMPTY = {"from": "2025-01-01", "to": "2025-01-03"}


def workbook_of(response):
    return openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))


def run_worker():
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


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
    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/reports/exports/{job.pk}/"
    assert (job.requested_by, job.status, job.filters) == (viewer, ExportStatus.QUEUED, RANGE)
    page = client.get(response["Location"])
    assert b"Queued" in page.content and b'http-equiv="refresh"' in page.content
    assert client.get(f"/reports/exports/{job.pk}/download/").status_code == 404  # not ready

    run_worker()

    job.refresh_from_db()
    assert job.status == ExportStatus.DONE, job.error
    assert job.row_count == expected.TOTALS["frames"] + expected.VERIFICATION_LOG_SIZE
    exported = [name for name in stored_files(_media_root) if name.startswith("exports/")]
    assert exported == [f"exports/{job.pk}.xlsx"]
    page = client.get(f"/reports/exports/{job.pk}/")
    assert b"export-download" in page.content and b"refresh" not in page.content
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
    client.force_login(factories.inspector())  # no reports permission at all
    assert client.get(f"/reports/exports/{job.pk}/download/").status_code == 403
    client.logout()
    assert client.get(f"/reports/exports/{job.pk}/download/").status_code == 302


def test_export_job_whose_filters_no_longer_hold_fails_with_the_reason(viewer, _media_root):
    from reports.services import export_job_run

    job = ExportJob.objects.create(requested_by=viewer, filters={**RANGE, "line": "GONE"})
    export_job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED
    assert job.error == "Unknown line 'GONE'."
    assert not job.file
    assert [name for name in stored_files(_media_root) if name.startswith("exports/")] == []
    export_job_run(job_id=str(job.pk))  # delivered twice: left as it is
    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED


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
    filters.date_index_pays  # noqa: B018
    with django_assert_num_queries(1):
        selectors.totals(filters)
    with django_assert_num_queries(1):
        selectors.volume(filters, by="day")
    for by in ("shift", "line", "station", "product"):
        with django_assert_num_queries(2):  # the counts + the names of the groups
            selectors.volume(filters, by=by)
    with django_assert_num_queries(1):
        selectors.pareto(filters)
    with django_assert_num_queries(2):  # per-version counts + the confusion cells
        selectors.model_versions(filters)
    with django_assert_num_queries(1):
        selectors.agreement_by_day(filters)
    with django_assert_num_queries(1):
        selectors.inspectors(filters)
