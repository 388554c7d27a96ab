"""A dataset upload in admin, in real Chromium: the job page follows the import live (its
script polls the job API) and shows the import's report when the worker is done."""

import os
from pathlib import Path

import pytest

from common.jobs import job_run
from common.models import Job
from models_registry.datasets.services import dataset_create
from tests import factories
from tests.browser.conftest import log_in, off_main_thread
from tests.conftest import committed_db
from tests.models_registry.datasets_helpers import as_zip, class_folders
from tests.servers import PROJECT_ROOT

pytestmark = [pytest.mark.browser, committed_db]

ARTIFACTS = (
    Path(os.environ.get("LINESIGHT_TEST_ARTIFACTS") or PROJECT_ROOT / "var" / "test-artifacts")
    / "datasets"
)


def shot(page, name: str) -> None:
    """A screenshot kept for review."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_import_page_follows_the_job_and_ends_with_its_report(browser, live_asgi, tmp_path):
    factories.engineer(username="qe")
    dataset = dataset_create(name="bottles")
    entries = class_folders({"ok": 3, "crack": 2})
    entries["crack/notes.jpg"] = b"text, not a photograph"
    archive = tmp_path / "photos.zip"
    archive.write_bytes(as_zip(entries))
    context = log_in(browser, live_asgi, "qe")
    page = context.new_page()
    page.goto(f"{live_asgi.url}/admin/models_registry/dataset/{dataset.pk}/upload/")
    page.set_input_files("input[name=archive]", str(archive))
    page.click("input[type=submit]")
    page.wait_for_url("**/jobs/**")
    assert page.inner_text("#job-state") == "queued"
    job = Job.objects.get(kind="dataset_import")
    assert page.url.endswith(f"/jobs/{job.pk}/")

    assert off_main_thread(job_run, str(job.pk)) == "done"  # what the worker does

    # No reload by hand: the page's script sees the job end and shows the report.
    page.wait_for_selector(".dataset-report", timeout=15_000)
    assert page.inner_text("#job-state") == "done"
    assert page.get_attribute("#job-progress", "value") == "100"
    report = page.inner_text(".dataset-report")
    assert "5 image(s) added" in report
    assert "crack/notes.jpg" in report and "not an image" in report
    shot(page, "import-report")

    page.goto(f"{live_asgi.url}/admin/models_registry/dataset/{dataset.pk}/change/")
    shot(page, "dataset-page")
    page.click("text=Thumbnails")
    page.wait_for_load_state("networkidle")
    loaded = page.eval_on_selector_all(
        ".dataset-grid img", "images => images.filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert loaded == 5  # every thumbnail came through the permission-checked view
    shot(page, "thumbnail-grid")
    context.close()
