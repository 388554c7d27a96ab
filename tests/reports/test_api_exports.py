"""Exports over the API with a user's token: start, poll, download; small CSVs at once."""

import csv
import io
import warnings

import openpyxl
import pytest
from django.core.files.storage import default_storage
from django.test import AsyncClient
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from common.jobs import job_run
from common.models import Job
from inspection.models import Inspection
from masterdata.models import Line
from reports.jobs import export_file_name
from tests import factories
from tests.conftest import committed_db
from tests.reports import expected
from tests.reports.conftest import RANGE


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


@pytest.fixture
def viewer(known_plant):
    return factories.viewer(username="bi-tool")


@pytest.fixture
def api(viewer) -> APIClient:
    return token_client(viewer)


def csv_rows(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode())))


def start(api: APIClient, body: dict) -> dict:
    response = api.post("/api/v1/exports/", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def downloaded(api: APIClient, export: dict):
    """Run the queued export as the worker would, then fetch its state and its file."""
    assert job_run(export["id"]) == "done"
    state = api.get(export["url"]).json()
    assert state["state"] == "done", state
    response = api.get(state["download_url"])
    assert response.status_code == 200
    return state, response


def test_a_workbook_export_is_started_polled_and_downloaded_with_a_token(api, viewer):
    export = start(api, {"format": "xlsx", **RANGE})
    assert export["state"] == "queued" and export["download_url"] is None
    assert export["url"] == f"http://testserver/api/v1/exports/{export['id']}/"
    job = Job.objects.get(pk=export["id"])
    # The same job the reports page starts: its page and the jobs API show it too.
    assert (job.kind, job.requested_by, job.payload["filters"]) == ("report_export", viewer, RANGE)

    state, response = downloaded(api, export)
    assert state["progress"] == 1.0 and state["filename"].endswith(".xlsx")
    assert state["row_count"] == expected.TOTALS["frames"] + expected.VERIFICATION_LOG_SIZE
    assert response["Content-Disposition"] == (
        'attachment; filename="linesight-report-2026-03-28-to-2026-03-29.xlsx"'
    )
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert summary["Frames"] == expected.TOTALS["frames"]
    assert book["Inspections"].max_row == expected.TOTALS["frames"] + 1


def test_a_csv_export_holds_the_same_lines_as_the_csv_streamed_at_once(api, _media_root):
    export = start(api, {"format": "csv", **RANGE, "station": "S2"})
    state, response = downloaded(api, export)
    assert response["Content-Type"].startswith("text/csv")
    assert state["filename"] == "linesight-report-2026-03-28-to-2026-03-29.csv"
    from_job = b"".join(response.streaming_content)
    rows = csv_rows(from_job)
    assert state["row_count"] == len(rows) == 6  # g1..g6 on station S2
    assert {row["station"] for row in rows} == {"S2"}
    assert default_storage.exists(f"exports/{export['id']}.csv")

    streamed = api.get("/api/v1/exports/csv/", {**RANGE, "station": "S2"})
    assert streamed.status_code == 200
    assert streamed["Content-Disposition"].endswith('.csv"')
    assert b"".join(streamed.streaming_content) == from_job


def test_the_page_downloads_a_csv_export_as_csv(client, api, viewer):
    export = start(api, {"format": "csv", **RANGE})
    assert job_run(export["id"]) == "done"
    client.force_login(viewer)
    response = client.get(f"/reports/exports/{export['id']}/download/")
    assert response["Content-Disposition"].endswith('.csv"')
    assert len(csv_rows(b"".join(response.streaming_content))) == expected.TOTALS["frames"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"format": "pdf"}, '"pdf" is not a valid choice'),
        ({"station": "NOPE"}, "Unknown station 'NOPE'."),
        ({"verdict": "fail"}, "Unknown field 'verdict'; an export takes format, from, to,"),
        ({"plant": ""}, "'plant' is empty: leave it out for every plant, or give a value."),
        ({"plant": None}, "'plant' is empty"),
        ({"line": 1}, "line: Must be a string."),
        ({"from": "2026-03-30", "to": "2026-03-28"}, "'from' (2026-03-30) is after 'to'"),
        ({"to": "2026-02-30"}, "'to' (2026-02-30): day 30 does not exist"),
    ],
)
def test_bad_filters_are_refused_and_nothing_is_queued(api, body, message):
    response = api.post("/api/v1/exports/", body, format="json")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not Job.objects.exists()
    assert not DBTaskResult.objects.exists()


def test_a_json_body_that_is_not_an_object_is_refused(api):
    response = api.post("/api/v1/exports/", ["csv"], format="json")
    assert response.status_code == 400
    assert not Job.objects.exists()


def test_only_the_reports_permission_may_export(known_plant):
    anonymous = APIClient().post("/api/v1/exports/", {"format": "csv"}, format="json")
    assert anonymous.status_code == 401
    inspector = token_client(factories.inspector())
    refused = inspector.post("/api/v1/exports/", {"format": "csv"}, format="json")
    assert refused.status_code == 403 and "reports.view_reports" in refused.json()["detail"]
    assert inspector.get("/api/v1/exports/csv/", RANGE).status_code == 403
    _, token = factories.station_with_token(code="CAM9", line_obj=known_plant.lines[0])
    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert device.post("/api/v1/exports/", {"format": "csv"}, format="json").status_code == 403
    assert not Job.objects.exists()
    engineer = token_client(factories.engineer())
    assert engineer.post("/api/v1/exports/", {"format": "csv"}, format="json").status_code == 202


def test_another_persons_export_is_not_found(api):
    export = start(api, {"format": "csv", **RANGE})
    assert job_run(export["id"]) == "done"
    other = token_client(factories.viewer())
    for path in (export["url"], f"{export['url']}download/"):
        response = other.get(path)
        assert response.status_code == 404
        assert response.json()["detail"] == "No export of yours with this id."


def test_a_download_before_the_export_is_done_says_so(api):
    export = start(api, {"format": "xlsx", **RANGE})
    response = api.get(f"{export['url']}download/")
    assert response.status_code == 409
    assert response.json()["detail"].endswith(
        "is queued (0 %); download it once its state is done."
    )


def test_a_failed_export_says_why_and_has_no_download(api, known_plant):
    export = start(api, {"format": "csv", **RANGE, "line": "L2"})
    # The line was valid when the export was asked for, and renamed before the worker ran it.
    Line.objects.filter(pk=known_plant.lines[1].pk).update(code="L2-OLD")
    assert job_run(export["id"]) == "failed"
    state = api.get(export["url"]).json()
    assert (state["state"], state["error"], state["download_url"]) == (
        "failed",
        "Unknown line 'L2'.",
        None,
    )
    response = api.get(f"{export['url']}download/")
    assert response.status_code == 409 and "Unknown line 'L2'." in response.json()["detail"]


def test_an_export_whose_file_was_deleted_is_gone(api):
    export = start(api, {"format": "csv", **RANGE})
    assert job_run(export["id"]) == "done"
    default_storage.delete(export_file_name(Job.objects.get(pk=export["id"])))
    response = api.get(f"{export['url']}download/")
    assert response.status_code == 410
    assert "start the export again" in response.json()["detail"]


def test_a_csv_too_large_to_stream_points_to_the_export_job(api, settings):
    settings.LINESIGHT = {**settings.LINESIGHT, "EXPORT_INLINE_MAX_ROWS": 5}
    response = api.get("/api/v1/exports/csv/", RANGE)
    assert response.status_code == 400
    body = response.json()
    assert (body["row_count"], body["limit"]) == (expected.TOTALS["frames"], 5)
    assert "POST /api/v1/exports/" in body["detail"]
    small = api.get("/api/v1/exports/csv/", {**RANGE, "station": "S1B"})
    assert small.status_code == 200
    assert len(csv_rows(b"".join(small.streaming_content))) == 1
    assert not Job.objects.exists()


def test_bad_filters_of_the_streamed_csv_are_refused(api):
    for params, message in (
        ({"staton": "S1"}, "Unknown field 'staton'"),
        ({**RANGE, "product": "NOPE"}, "Unknown product 'NOPE'."),
    ):
        response = api.get("/api/v1/exports/csv/", params)
        assert response.status_code == 400
        assert message in response.json()["detail"]


def test_the_workers_csv_reports_its_rows_as_it_writes_them(api, monkeypatch):
    from reports import exports

    monkeypatch.setattr(exports, "PROGRESS_EVERY_ROWS", 4)
    seen: list[str] = []
    monkeypatch.setattr(
        "reports.jobs.job_progress",
        lambda job, fraction, message="", force=False: seen.append(message),
    )
    export = start(api, {"format": "csv", **RANGE})
    assert job_run(export["id"]) == "done"
    frames = expected.TOTALS["frames"]
    assert seen[:4] == [
        f"Writing {frames} rows",
        f"Wrote 4 of {frames} rows",
        f"Wrote 8 of {frames} rows",
        f"Wrote 12 of {frames} rows",
    ]
    assert Inspection.objects.count() > frames  # the frames outside the range are not counted


@committed_db
async def test_the_streamed_csv_is_not_buffered_under_asgi(monkeypatch):
    from asgiref.sync import sync_to_async
    from django.db import connection, connections

    from tests.reports.conftest import build_known_plant

    # The request runs in a thread of its own: let it close its connection when done.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    await sync_to_async(build_known_plant)()
    token = await sync_to_async(lambda: factories.api_token(factories.viewer()))()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django warns when it must buffer a sync iterator
        response = await AsyncClient().get(
            "/api/v1/exports/csv/", RANGE, headers={"Authorization": f"Token {token}"}
        )
        assert response.status_code == 200
        assert response.is_async
        chunks = [chunk async for chunk in response.streaming_content]
    await sync_to_async(connections.close_all)()
    assert len(csv_rows(b"".join(chunks))) == expected.TOTALS["frames"]
