"""Downloads served through Django's own ASGI handler, as uvicorn serves them in the demo.

Django's test AsyncClient reads a response's content itself; the ASGI handler
instead goes through ``StreamingHttpResponse.__aiter__``, which warns (and
reads a synchronous iterator whole into memory) when handed a sync iterator.
"""

import asyncio
import csv
import io
import warnings

import openpyxl
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import connection, connections
from django.test import AsyncClient
from django.utils.http import urlencode

from common.jobs import job_enqueue, job_run
from tests import factories
from tests.conftest import committed_db
from tests.reports import expected
from tests.reports.conftest import RANGE, build_known_plant


async def served(path: str, params: dict, cookie: str) -> tuple[int, dict, list[bytes]]:
    """One GET through ASGIHandler: status, headers and the body as the server got it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(params).encode(),
        "headers": [(b"host", b"testserver"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    finished = asyncio.Event()

    async def receive():
        if requests:
            return requests.pop()
        await finished.wait()  # the client stays connected until the whole body is sent
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    await ASGIHandler()(scope, receive, send)
    start = sent[0]
    headers = {key.decode().lower(): value.decode() for key, value in start["headers"]}
    bodies = [m["body"] for m in sent[1:] if m["type"] == "http.response.body" and m.get("body")]
    return start["status"], headers, bodies


@pytest.fixture
def close_request_connections(monkeypatch):
    # Each request runs in a thread of its own: let it close its connection,
    # so the test database can be dropped (persistent connections are on).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    yield
    connections.close_all()


async def signed_in_cookie(user=None) -> str:
    await sync_to_async(build_known_plant)()  # committed: the handler reads it from its thread
    client = AsyncClient()
    await client.aforce_login(user or await sync_to_async(factories.viewer)())
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@committed_db
async def test_csv_under_asgi_streams_without_the_sync_iterator_warning(
    close_request_connections, monkeypatch
):
    cookie = await signed_in_cookie()
    # Small chunks: the body must come in several parts, not read whole first.
    from reports import exports

    chunks = exports.csv_chunks
    monkeypatch.setattr(exports, "csv_chunks", lambda f: chunks(f, lines_per_chunk=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "StreamingHttpResponse must consume ..." fails here
        status, headers, bodies = await served("/reports/export.csv", RANGE, cookie)
    await sync_to_async(connections.close_all)()
    assert status == 200
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        'filename="linesight-report-2026-03-28-to-2026-03-29.csv"' in headers["content-disposition"]
    )
    assert len(bodies) > 2
    rows = list(csv.DictReader(io.StringIO(b"".join(bodies).decode())))
    assert len(rows) == expected.TOTALS["frames"]
    assert sum(row["defective"] == "true" for row in rows) == expected.TOTALS["defective"]


@committed_db
async def test_workbook_under_asgi_is_served_without_the_sync_iterator_warning(
    close_request_connections,
):
    cookie = await signed_in_cookie()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status, headers, bodies = await served("/reports/export.xlsx", RANGE, cookie)
    await sync_to_async(connections.close_all)()
    assert status == 200
    assert "linesight-report-2026-03-28-to-2026-03-29.xlsx" in headers["content-disposition"]
    body = b"".join(bodies)
    assert int(headers["content-length"]) == len(body)
    book = openpyxl.load_workbook(io.BytesIO(body))
    assert book["Inspections"].max_row == expected.TOTALS["frames"] + 1


@committed_db
async def test_a_background_exports_download_under_asgi_has_no_sync_iterator_warning(
    close_request_connections, _media_root
):
    user = await sync_to_async(factories.viewer)()
    cookie = await signed_in_cookie(user)
    job = await sync_to_async(job_enqueue)(
        kind="report_export", requested_by=user, payload={"filters": RANGE}
    )
    assert await sync_to_async(job_run)(str(job.pk)) == "done"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status, headers, bodies = await served(f"/reports/exports/{job.pk}/download/", {}, cookie)
    await sync_to_async(connections.close_all)()
    assert status == 200
    assert "linesight-report-2026-03-28-to-2026-03-29.xlsx" in headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(b"".join(bodies)))
    assert book["Inspections"].max_row == expected.TOTALS["frames"] + 1
