"""Training in admin: the Train page, the run's live page with its chart, cancel."""

import json

import pytest
from django.test import Client

from common.admin_forms import admin_change_url
from common.jobs import job_run
from common.models import Job
from models_registry.training.models import TrainingRun
from tests import factories
from tests.models_registry.test_api import client_for
from tests.models_registry.test_training import FAST, snapshot_from

pytestmark = pytest.mark.django_db
RUNS_URL = "/admin/models_registry/trainingrun/"


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


@pytest.fixture
def browser(engineer) -> Client:
    client = Client()
    client.force_login(engineer)
    return client


def test_train_page_refuses_bad_settings_on_the_form_and_starts_nothing(browser, engineer):
    snapshot = snapshot_from(client_for(engineer), "parts", {"good": 8, "scratch": 8})
    page = browser.get(f"{RUNS_URL}add/")
    assert page.status_code == 200 and b"Train a model version" in page.content
    response = browser.post(
        f"{RUNS_URL}add/",
        {
            "snapshot": snapshot.pk,
            "model": "scratches",
            "recipe": "default",
            "settings": json.dumps({"input_size": 5000}),
        },
    )
    assert response.status_code == 200
    assert b"input_size must be from 16 to 1024" in response.content
    assert not TrainingRun.objects.exists() and not Job.objects.filter(kind="training").exists()


def test_a_run_started_in_admin_is_followed_on_its_page_then_shows_its_version(browser, engineer):
    snapshot = snapshot_from(client_for(engineer), "parts", {"good": 12, "scratch": 12})
    response = browser.post(
        f"{RUNS_URL}add/",
        {
            "snapshot": snapshot.pk,
            "model": "scratches",
            "recipe": "default",
            "settings": json.dumps(FAST),
        },
    )
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response.url == f"{RUNS_URL}{run.pk}/change/"
    page = browser.get(response.url).content.decode()
    assert 'id="training-chart"' in page and "chart.umd.min.js" in page
    assert f'data-url="/api/v1/trainings/{run.pk}/"' in page and "Cancel training" in page
    assert "color_mode" in page and "image modes: L" in page  # the choices, shown

    assert job_run(str(run.job_id)) == "done"
    page = browser.get(response.url).content.decode()
    run.refresh_from_db()
    assert "Cancel training" not in page and admin_change_url(run.version) in page
    history = json.loads(
        page.split('id="training-history" type="application/json">')[1].split("<")[0]
    )
    assert [epoch["epoch"] for epoch in history] == [1, 2]
    # The page polls the API with the admin session.
    assert browser.get(f"/api/v1/trainings/{run.pk}/").json()["state"] == "done"


def test_cancel_in_admin_stops_a_queued_run(browser, engineer):
    snapshot = snapshot_from(client_for(engineer), "parts", {"good": 8, "scratch": 8})
    browser.post(
        f"{RUNS_URL}add/",
        {"snapshot": snapshot.pk, "model": "scratches", "recipe": "default", "settings": "{}"},
    )
    run = TrainingRun.objects.get()
    response = browser.post(f"{RUNS_URL}{run.pk}/cancel/")
    assert response.status_code == 302
    run.job.refresh_from_db()
    assert run.job.state == "cancelled"
    assert job_run(str(run.job_id)).startswith("not claimed")  # the worker leaves it alone


def test_inspectors_cannot_start_or_cancel_trainings(engineer):
    snapshot = snapshot_from(client_for(engineer), "parts", {"good": 8, "scratch": 8})
    client = Client()
    client.force_login(factories.inspector())
    assert client.get(f"{RUNS_URL}add/").status_code in (302, 403)  # not staff: to the login
    response = client_for(factories.inspector(username="insp2")).post(
        "/api/v1/trainings/",
        {"dataset": "parts", "snapshot": snapshot.number, "model": "x"},
        format="json",
    )
    assert response.status_code == 403 and not TrainingRun.objects.exists()
