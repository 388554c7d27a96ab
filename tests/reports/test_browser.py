"""A Viewer in a real Chromium: the reports page draws its charts and the workbook agrees."""

import io
import threading

import openpyxl
import pytest
from django.db import connections

from common.jobs import job_run
from tests import factories
from tests.browser.chromium import CHROMIUM_ARGS
from tests.conftest import committed_db
from tests.reports import expected
from tests.reports.conftest import build_known_plant

pytestmark = [
    pytest.mark.browser,
    committed_db,
]


@pytest.fixture
def page(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on(
            "response",
            lambda r: (
                r.status >= 400
                and not r.url.endswith("/favicon.ico")  # the browser asks; the site has none
                and page.errors.append(f"{r.status} {r.url}")
            ),
        )
        yield page
        browser.close()


@pytest.fixture
def committed_plant(live_server):
    """Data written before the browser starts: Playwright's loop forbids the ORM in the test."""
    build_known_plant()
    factories.viewer(username="vera", password="pw-vera-1")


def test_viewer_sees_charts_and_downloads_a_workbook_that_agrees(
    committed_plant, live_server, page, tmp_path
):
    page.goto(
        f"{live_server.url}/accounts/login/?next=/reports/%3Ffrom%3D2026-03-28%26to%3D2026-03-29"
    )
    page.fill("input[name=username]", "vera")
    page.fill("input[name=password]", "pw-vera-1")
    page.click("button[type=submit]")
    page.wait_for_url("**/reports/?from=2026-03-28&to=2026-03-29")
    page.wait_for_function("window.lineSightCharts && window.lineSightCharts.agreement")

    charts = page.evaluate(
        """() => Object.fromEntries(Object.entries(window.lineSightCharts).map(([name, chart]) => [
            name,
            {
              labels: chart.data.labels,
              data: chart.data.datasets.map((d) => d.data),
              width: chart.width,
              painted: (() => {
                const c = chart.canvas;
                const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < px.length; i += 4) if (px[i]) n++;
                return n;
              })(),
            },
        ]))"""
    )
    assert charts["trend"]["labels"] == ["2026-03-28", "2026-03-29"]
    assert charts["trend"]["data"][0] == pytest.approx([4 / 7, 4 / 6])  # defect rate by day
    assert charts["trend"]["data"][1] == pytest.approx([2 / 7, 2 / 6])  # first-pass yield
    assert charts["pareto"]["labels"] == ["crack", "scratch"]
    assert charts["pareto"]["data"] == [[4, 2], pytest.approx([4 / 6, 1.0])]
    assert charts["agreement"]["data"] == [
        pytest.approx([1 / 3, 1 / 2]),
        pytest.approx([1 / 2, 0.0]),
    ]
    for name, chart in charts.items():
        assert chart["width"] > 200 and chart["painted"] > 1000, name  # really drawn
    diagonal = page.locator("#confusion-1 td.diagonal").first
    assert diagonal.evaluate("td => getComputedStyle(td).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert page.locator('#totals [data-key="defect_rate"] .value').inner_text() == "61.5 %"
    page.screenshot(path=str(tmp_path / "reports.png"), full_page=True)

    with page.expect_download() as download:
        page.click("text=Download workbook (.xlsx)")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == "linesight-report-2026-03-28-to-2026-03-29.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(path.read_bytes()))
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert summary["Frames"] == expected.TOTALS["frames"]
    assert f"{summary['Defect rate'] * 100:.1f} %" == "61.5 %"
    assert page.errors == []


def _work(job_id: str) -> None:
    """What the exports queue's worker does with the job, in a thread of its own."""
    try:
        job_run(job_id)
    finally:
        connections.close_all()


def test_a_large_export_page_follows_its_job_and_offers_the_workbook(
    committed_plant, live_server, page, tmp_path, settings
):
    settings.LINESIGHT = {**settings.LINESIGHT, "EXPORT_INLINE_MAX_ROWS": 10}  # 13 + 9 rows
    page.goto(f"{live_server.url}/accounts/login/?next=/reports/%3Ffrom%3D2026-03-28")
    page.fill("input[name=username]", "vera")
    page.fill("input[name=password]", "pw-vera-1")
    page.click("button[type=submit]")
    page.wait_for_url("**/reports/?from=2026-03-28")
    page.goto(f"{live_server.url}/reports/?from=2026-03-28&to=2026-03-29")
    page.click("text=Download workbook (.xlsx)")
    page.wait_for_url("**/reports/exports/*/")
    status = page.locator("#export-status")
    assert status.get_attribute("data-status") == "queued"
    assert "Queued" in status.inner_text()

    worker = threading.Thread(target=_work, args=(page.url.rstrip("/").rsplit("/", 1)[1],))
    worker.start()
    worker.join(timeout=60)
    # The page's script sees the job finish through the jobs API, without a reload.
    page.wait_for_selector("#export-download", timeout=15_000)
    assert status.get_attribute("data-status") == "done"
    rows = expected.TOTALS["frames"] + expected.VERIFICATION_LOG_SIZE
    assert f"Ready: {rows} rows." in status.inner_text()
    with page.expect_download() as download:
        page.click("#export-download")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == "linesight-report-2026-03-28-to-2026-03-29.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(path.read_bytes()))
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert summary["Frames"] == expected.TOTALS["frames"]
    assert page.errors == []


def test_one_day_of_frames_is_drawn_as_bars_not_a_lone_dot(committed_plant, live_server, page):
    page.goto(f"{live_server.url}/accounts/login/?next=/reports/%3Ffrom%3D2026-03-22")
    page.fill("input[name=username]", "vera")
    page.fill("input[name=password]", "pw-vera-1")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/reports/?from=2026-03-22&to=2026-03-28")
    page.wait_for_function("window.lineSightCharts && window.lineSightCharts.trend")
    # The 27th has one frame and the 28th seven: two days, a line.
    assert page.evaluate("window.lineSightCharts.trend.config.type") == "line"
    page.goto(f"{live_server.url}/reports/?from=2026-03-21&to=2026-03-27")
    page.wait_for_function("window.lineSightCharts && window.lineSightCharts.trend")
    trend = page.evaluate(
        """() => {
          const chart = window.lineSightCharts.trend;
          const bars = chart.getDatasetMeta(0).data;
          return {type: chart.config.type, width: bars.length ? bars[6].width : 0};
        }"""
    )
    assert trend["type"] == "bar"
    assert trend["width"] > 5  # a visible bar on the one day with frames
    assert "Only one day" in page.locator("#trend-note").inner_text()
    assert page.errors == []
