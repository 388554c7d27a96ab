"""The registry's admin screens in real Chromium: a validation followed step by step without
reloading, and a deploy form that starts from the station's current settings."""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.db import connections

from models_registry.models import Deployment
from models_registry.services import deployment_activate, model_create, version_upload
from tests import factories
from tests.conftest import committed_db
from tests.registry import artifact_bytes
from tests.servers import PROJECT_ROOT
from tests.tf_models import DEFAULT_LABELS

pytestmark = [pytest.mark.browser, committed_db]

ARTIFACTS = (
    Path(os.environ.get("LINESIGHT_TEST_ARTIFACTS") or PROJECT_ROOT / "var" / "test-artifacts")
    / "registry"
)


@pytest.fixture(autouse=True)
def work_dir(settings, tmp_path):
    work = tmp_path / "validation-work"
    work.mkdir()
    settings.LINESIGHT = {**settings.LINESIGHT, "SANDBOX_WORK_DIR": str(work)}
    return work


def admin_page(browser, server, username: str):
    """A page of a browser context logged in to admin through its login form."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{server.url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    with page.expect_navigation():
        page.click("input[type=submit]")
    return page


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def in_background(function, *args):
    """Run ``function`` in a worker thread of its own, as the task worker would."""

    def run():
        try:
            return function(*args)
        finally:
            connections.close_all()

    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future


@pytest.mark.slow
def test_version_page_follows_the_validation_step_by_step_without_a_reload(live_asgi, browser):
    from models_registry.validation.jobs import validation_run_now

    factories.engineer(username="engineer")
    version = version_upload(
        model=model_create(name="bottle"),
        artifact=ContentFile(artifact_bytes(), name="bottle.zip"),
        labels=list(DEFAULT_LABELS),
    )
    page = admin_page(browser, live_asgi, "engineer")
    page.goto(f"{live_asgi.url}/admin/models_registry/modelversion/{version.pk}/change/")
    assert "waiting for the validation worker" in page.inner_text("#validation")
    page.evaluate("() => { window.sameDocument = true; }")

    run = in_background(validation_run_now, version.pk)
    page.wait_for_selector("#validation-steps li[data-state=running]", timeout=30_000)
    page.wait_for_selector("#validation-steps li[data-step=load][data-state=done]", timeout=120_000)
    load_time = page.inner_text("#validation-steps li[data-step=load] .step-time")
    unpack_state = page.get_attribute("#validation-steps li[data-step=unpack]", "data-state")
    followed_live = page.evaluate("() => window.sameDocument === true")
    shot(page, "validation-in-progress")
    run.result(timeout=300)

    assert followed_live  # the steps arrived in the page the engineer opened
    assert load_time.endswith(" s") and unpack_state == "done"
    # When the run ends, the page shows the result the server renders (signature, labels).
    page.wait_for_function(
        "() => window.sameDocument === undefined"
        " && document.querySelector('#version-summary dd.status-ready')",
        timeout=20_000,
    )
    summary = page.inner_text("#version-summary")
    assert "Ready" in summary and "TFLite" in summary and " ms" in summary
    states = page.eval_on_selector_all(
        "#validation-steps li", "items => items.map(item => item.dataset.state)"
    )
    assert states and set(states) == {"done"}
    shot(page, "validation-done")


def test_deploy_form_fills_in_the_chosen_stations_settings(live_asgi, browser):
    factories.engineer(username="engineer")
    station = factories.station(code="CAP-1")
    old = factories.version_row(model_name="bottle")
    deployment_activate(
        station=station, version=old, pass_review_rate=0.02, confidence_threshold=0.9
    )
    new = factories.version_row(model_name="bottle")
    page = admin_page(browser, live_asgi, "engineer")

    page.goto(f"{live_asgi.url}/admin/models_registry/deployment/add/?version={new.pk}")
    assert page.input_value("#id_pass_review_rate") == "0.0"
    with page.expect_navigation():
        page.select_option("#id_station", str(station.pk))

    assert page.input_value("#id_version") == str(new.pk)
    assert page.input_value("#id_pass_review_rate") == "0.02"
    assert page.input_value("#id_confidence_threshold") == "0.9"
    assert "audit sample of passes 2 %" in page.inner_text("#replaced-settings")
    with page.expect_navigation():
        page.click("input[type=submit]")
    active = Deployment.objects.get(station=station, is_active=True)
    assert (active.version, active.pass_review_rate) == (new, 0.02)
    shot(page, "deployed")


def test_roll_back_from_the_deployment_page(live_asgi, browser):
    factories.engineer(username="engineer")
    station = factories.station(code="CAP-1")
    v1 = factories.version_row(model_name="bottle")
    v2 = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=station, version=v1)
    current = factories.deployment(station_obj=station, version=v2)
    page = admin_page(browser, live_asgi, "engineer")

    page.goto(f"{live_asgi.url}/admin/models_registry/deployment/{current.pk}/change/")
    with page.expect_navigation():
        page.click("a.rollback-link")
    assert f"{v2} → {v1}" in " ".join(page.inner_text("ul.rollback-list").split())
    with page.expect_navigation():
        page.click("input[type=submit][value='Roll back']")

    assert f"CAP-1 rolled back to {v1}." in page.inner_text("ul.messagelist")
    assert Deployment.objects.get(station=station, is_active=True).version == v1


def test_line_view_writes_confidence_as_the_server_does_and_ends_captions_cleanly(
    live_asgi, browser
):
    from tests.browser import scene as scenes
    from tests.browser.conftest import off_main_thread, open_live

    scene = scenes.build(line_code="L1", inspector_name="alice")
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{live_asgi.url}/accounts/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "pw")
    with page.expect_navigation():
        page.click("button[type=submit]")
    line_view = open_live(context, f"{live_asgi.url}/dashboard/lines/L1/")

    frame = off_main_thread(
        scenes.frame, scene.deployments[0], verdict="pass", label="ok", confidence=0.97341
    )

    caption = line_view.wait_for_selector(
        f'[data-frames] [data-inspection-id="{frame.pk}"] .caption'
    )
    text = " ".join(caption.inner_text().split())
    assert text == f"ok 97.3 % {scene.stations[0].code}"  # nothing dangles after the station
    tile = line_view.inner_text(
        f'.tile[data-station="{scene.stations[0].code}"] [data-field=label]'
    )
    assert tile == "ok · 97.3 %"
    shot(line_view, "line-view")


def test_versions_list_with_a_long_reason_fits_a_1366_px_screen(live_asgi, browser):
    factories.engineer(username="engineer")
    factories.version_row(
        model_name="bottle-cap-inspection-line-3",
        status="invalid",
        status_reason="The model returns 3 scores per frame but the version has 2 labels; give "
        "exactly one label per output, in output order. " * 3,
    )
    factories.deployment(
        station_obj=factories.station(code="LINE-3-CAP-STATION-1"),
        version=factories.version_row(model_name="bottle-cap-inspection-line-3"),
    )
    page = admin_page(browser, live_asgi, "engineer")

    page.goto(f"{live_asgi.url}/admin/models_registry/modelversion/")

    assert "returns 3 scores per frame" in page.inner_text("#result_list")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    shot(page, "versions-list")
    assert width <= 1366


def test_deployments_and_inspections_lists_fit_a_1366_px_screen(live_asgi, browser):
    factories.engineer(username="engineer")
    station = factories.station(code="LINE-3-CAP-STATION-1")
    version = factories.version_row(model_name="bottle-cap-inspection-line-3")
    deployment = factories.deployment(station_obj=station, version=version)
    factories.inspection_row(
        deployment_obj=deployment,
        verdict="review",
        label="missing_cap",
        serial="SERIAL-0000000000-LONG-LONG-LONG",
        lot="LOT-2026-12-01-NIGHT-SHIFT-A",
    )
    page = admin_page(browser, live_asgi, "engineer")

    for path, name in (
        ("models_registry/deployment/", "deployments-list"),
        ("inspection/inspection/", "inspections-list"),
        ("models_registry/deploymenthistory/", "deployment-history-list"),
    ):
        page.goto(f"{live_asgi.url}/admin/{path}")
        assert page.locator("#result_list tbody tr").count() >= 1, path
        shot(page, name)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 1366, f"{path} is {width} px wide"
