"""Evaluating two versions in admin, in real Chromium: the page follows the job live (its
script polls the job API), then draws the calibration charts and shows the images the two
versions disagree on, each thumbnail through the dataset's permission-checked view."""

import os
from pathlib import Path

import pytest

from common.jobs import job_run
from common.models import Job
from models_registry.datasets.services import (
    dataset_create,
    dataset_import_start,
    dataset_split,
    snapshot_create,
)
from tests import factories
from tests.browser.conftest import log_in, off_main_thread
from tests.conftest import committed_db
from tests.images import BLUE, GREEN, RED, frame_bytes
from tests.models_registry.datasets_helpers import as_zip
from tests.models_registry.test_evaluation import blue_green_swapped
from tests.registry import ready_version
from tests.servers import PROJECT_ROOT

pytestmark = [pytest.mark.browser, committed_db]

ARTIFACTS = (
    Path(os.environ.get("LINESIGHT_TEST_ARTIFACTS") or PROJECT_ROOT / "var" / "test-artifacts")
    / "evaluations"
)


def shot(page, name: str) -> None:
    """A screenshot kept for review."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def colour_snapshot():
    """Red 'ok', green 'missing_cap', blue 'crack' photographs, imported by the real job (so
    thumbnails exist), all in the test split, frozen as snapshot 1."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    entries = {}
    for colour, label, count in ((RED, "ok", 4), (GREEN, "missing_cap", 3), (BLUE, "crack", 3)):
        for n in range(count):
            entries[f"{label}/{label}{n}a.png"] = frame_bytes(colour, size=(40 + n, 30))
    dataset = dataset_create(name="bottles")
    job = dataset_import_start(
        dataset=dataset, archive=SimpleUploadedFile("photos.zip", as_zip(entries))
    )
    assert job_run(str(job.pk)) == "done", Job.objects.get(pk=job.pk).error
    dataset_split(dataset=dataset, shares={"train": 0, "validation": 0, "test": 1}, grouping="none")
    return snapshot_create(dataset=dataset)


def test_the_evaluation_page_follows_the_job_then_draws_its_figures(browser, live_asgi):
    factories.engineer(username="qe")
    champion = ready_version(model_name="bottle")
    challenger = ready_version(model_name="bottle-b", keras_model=blue_green_swapped())
    snapshot = colour_snapshot()
    context = log_in(browser, live_asgi, "qe")
    page = context.new_page()

    page.goto(f"{live_asgi.url}/admin/models_registry/evaluation/add/?version={champion.pk}")
    page.select_option("select[name=snapshot]", str(snapshot.pk))
    page.select_option("select[name=challenger]", str(challenger.pk))
    page.click("input[type=submit]")
    page.wait_for_url("**/evaluation/*/change/")
    assert page.inner_text("#job-state") == "queued"
    job = Job.objects.get(kind="evaluation")

    assert off_main_thread(job_run, str(job.pk)) == "done"  # what the evaluations worker does

    # No reload by hand: the page's script sees the job end and the figures appear.
    page.wait_for_selector("#metrics", timeout=20_000)
    assert page.inner_text("#job-state") == "done"
    page.wait_for_load_state("networkidle")
    drawn = page.evaluate(
        "['champion', 'challenger'].map(r => !!Chart.getChart(document.getElementById("
        "'calibration-' + r)))"
    )
    assert drawn == [True, True]
    assert "bottle v1 is better" in page.inner_text("#paired-test")
    page.locator("#disagree-images").scroll_into_view_if_needed()  # thumbnails load lazily
    page.wait_for_function(
        "[...document.querySelectorAll('#disagree-images img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length === 6",
        timeout=10_000,
    )
    shot(page, "evaluation-page")

    page.click("#disagree-images li a >> nth=0")
    page.wait_for_url("**/dataset/*/images/*/")
    assert "bottles" in page.title()
    context.close()
