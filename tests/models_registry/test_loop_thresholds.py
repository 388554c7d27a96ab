"""Per-defect reject thresholds suggested from a training run's validation split, shown in
the API and admin, and pre-filled in the deploy form only when the engineer asks."""

import pytest
from django.test import Client

from common.admin_forms import admin_change_url
from common.jobs import job_run
from masterdata.models import DefectType
from models_registry import selectors
from models_registry.training.models import TrainingRun
from tests import factories
from tests.models_registry.test_admin import activation_data
from tests.models_registry.test_api import client_for
from tests.models_registry.test_training import FAST, snapshot_from, start

pytestmark = pytest.mark.django_db
ACTIVATE_URL = "/admin/models_registry/deployment/add/"


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


@pytest.fixture
def api(engineer):
    return client_for(engineer)


@pytest.fixture
def browser(engineer) -> Client:
    client = Client()
    client.force_login(engineer)
    return client


def test_a_finished_training_suggests_thresholds_that_the_deploy_form_applies(api, browser):
    snapshot = snapshot_from(api, "parts", {"good": 16, "scratch": 16})
    body = start(api, snapshot, settings={**FAST, "target_escape_rate": 0.0}).json()
    assert body["suggested_thresholds"] == {}  # nothing until the run is done
    assert job_run(body["job"]["id"]) == "done"

    run = api.get(f"/api/v1/trainings/{body['id']}/").json()
    suggested = run["suggested_thresholds"]
    assert suggested["split"] == "validation" and suggested["target_escape_rate"] == 0.0
    assert (
        suggested["images"]
        == TrainingRun.objects.get().snapshot.items.filter(split="validation").count()
    )
    scratch = suggested["thresholds"]["surface_scratch"]
    # No scratched validation part may pass at that threshold, and it never exceeds the
    # confidence threshold a new deployment starts from.
    assert scratch["escape_rate"] == 0.0
    assert 0.0 <= scratch["threshold"] <= 0.8
    assert set(scratch) >= {"review_load", "false_reject_rate", "images"}

    training = TrainingRun.objects.select_related("version").get()
    page = browser.get(admin_change_url(training)).content.decode()
    assert 'id="suggested-thresholds"' in page and "surface_scratch" in page
    assert f"?version={training.version_id}&amp;suggested=1" in page

    # The deploy form offers them, and fills them in only on "apply".
    station = factories.station(code="SCR-1")
    offer = browser.get(f"{ACTIVATE_URL}?station={station.pk}&version={training.version_id}")
    html = offer.content.decode()
    assert 'id="apply-suggested"' in html and "Suggested thresholds applied" not in html
    assert offer.context["thresholds"].initial == []
    applied = browser.get(
        f"{ACTIVATE_URL}?station={station.pk}&version={training.version_id}&suggested=1"
    )
    assert "Suggested thresholds applied" in applied.content.decode()
    defect = DefectType.objects.get(code="surface_scratch")
    assert applied.context["thresholds"].initial == [
        {"defect_type": defect.pk, "threshold": scratch["threshold"]}
    ]
    # Activated through the ordinary activation: history kept, the threshold stored.
    response = browser.post(
        ACTIVATE_URL,
        activation_data(
            station=station,
            version=training.version,
            **{
                "thresholds-0-defect_type": defect.pk,
                "thresholds-0-threshold": str(scratch["threshold"]),
            },
        ),
    )
    assert response.status_code == 302
    deployment = selectors.active_deployment(station=station)
    assert deployment.version == training.version
    assert [(t.defect_type.code, t.threshold) for t in deployment.defect_thresholds.all()] == [
        ("surface_scratch", pytest.approx(scratch["threshold"]))
    ]


def test_a_target_escape_rate_out_of_range_is_refused_before_any_job(api):
    snapshot = snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    response = start(api, snapshot, settings={**FAST, "target_escape_rate": 1.5})
    assert response.status_code == 400
    assert "target_escape_rate must be from 0 to 1" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_the_deploy_form_offers_nothing_for_a_version_without_a_training_run(browser):
    version = factories.version_row(model_name="bottle")
    page = browser.get(f"{ACTIVATE_URL}?version={version.pk}&suggested=1").content.decode()
    assert 'id="apply-suggested"' not in page and "Suggested thresholds applied" not in page


def test_the_deploy_form_sets_and_keeps_the_least_sure_frames_review(browser):
    station = factories.station(code="CAP-1")
    version = factories.version_row(model_name="bottle")
    response = browser.post(
        ACTIVATE_URL,
        activation_data(
            station=station, version=version, low_margin_review="0.2", low_margin_daily_cap="30"
        ),
    )
    assert response.status_code == 302
    deployment = selectors.active_deployment(station=station)
    assert (deployment.low_margin_review, deployment.low_margin_daily_cap) == (0.2, 30)
    page = browser.get(response["Location"]).content.decode()
    assert "within 20" in page and "at most 30 a day" in page
    # The next activation of the station starts from these settings.
    form = browser.get(f"{ACTIVATE_URL}?station={station.pk}").context["form"]
    assert (form.initial["low_margin_review"], form.initial["low_margin_daily_cap"]) == (0.2, 30)
    # Out of range: refused on the form, nothing changes.
    refused = browser.post(
        ACTIVATE_URL,
        activation_data(station=station, version=version, low_margin_review="1.5"),
    )
    assert refused.status_code == 200
    assert selectors.active_deployment(station=station) == deployment
