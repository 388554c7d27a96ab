"""A saved retrain plan: one admin action adds the frames inspectors verified since to the
plan's dataset, freezes a new snapshot with them and starts a training run on it."""

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from common.jobs import job_run
from common.models import Job
from inspection.services import verification_record
from masterdata.models import DefectType
from models_registry.datasets.models import Dataset, DatasetSnapshot
from models_registry.models import MLModel
from models_registry.training.models import RetrainPlan, TrainingRun
from tests import factories
from tests.models_registry.test_api import client_for
from tests.models_registry.test_training import part_photo, snapshot_from
from tests.registry import ready_version

pytestmark = pytest.mark.django_db
PLANS_URL = "/admin/models_registry/retrainplan/"


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


@pytest.fixture
def browser(engineer) -> Client:
    client = Client()
    client.force_login(engineer)
    return client


def test_retrain_now_adds_the_newly_verified_frames_and_starts_a_run(browser, engineer):
    api = client_for(engineer)
    snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    station = factories.station(code="SCR-1")
    version = ready_version(
        model_name="scratches",
        labels=["good", "scratch"],
        mapping={"good": None, "scratch": "surface_scratch"},
    )
    deployment = factories.deployment(station_obj=station, version=version)
    inspector = factories.inspector(username="ines")
    scratch = DefectType.objects.get(code="surface_scratch")
    for index in range(4):  # the model passed them; the inspector found two scratched
        frame = factories.inspection_row(deployment_obj=deployment, verdict="pass", label="good")
        frame.image.save(f"f{index}.png", ContentFile(part_photo(900 + index, scratched=index < 2)))
        decision = "correct" if index < 2 else "confirm"
        verification_record(
            inspection=frame,
            inspector=inspector,
            decision=decision,
            defect_type=scratch if index < 2 else None,
        )

    # The plan is saved in admin; bad settings are refused on its form.
    model = MLModel.objects.get(name="scratches")
    dataset = Dataset.objects.get(name="parts")
    fields = {"model": model.pk, "dataset": dataset.pk, "station": station.pk, "recipe": "default"}
    refused = browser.post(f"{PLANS_URL}add/", {**fields, "settings_requested": '{"epochs": 0}'})
    assert refused.status_code == 200 and "epochs must be from 1 to 500" in refused.content.decode()
    assert not RetrainPlan.objects.exists()
    saved = browser.post(f"{PLANS_URL}add/", {**fields, "settings_requested": '{"epochs": 2}'})
    assert saved.status_code == 302
    plan = RetrainPlan.objects.get()

    response = browser.post(
        PLANS_URL, {"action": "retrain_selected", "_selected_action": [plan.pk]}, follow=True
    )
    assert "the verified frames are being added to parts" in response.content.decode()
    job = Job.objects.get(kind="retrain")
    assert job_run(str(job.pk)) == "done", job.error
    job.refresh_from_db()
    assert job.result["frames_added"] == 4 and job.result["snapshot"] == 2

    snapshot = DatasetSnapshot.objects.get(dataset__name="parts", number=2)
    from_line = snapshot.items.filter(image__source="inspection")
    assert from_line.count() == 4
    assert sorted(from_line.values_list("label__name", flat=True)) == [
        "good",
        "good",
        "scratch",
        "scratch",
    ]
    assert not from_line.filter(split="unassigned").exists()  # split like the others
    run = TrainingRun.objects.get()
    assert run.snapshot == snapshot and run.model_name == "scratches" and run.state == "queued"
    assert run.settings_chosen["epochs"] == 2
    plan.refresh_from_db()
    assert plan.last_run == run
    listing = browser.get(PLANS_URL).content.decode()
    assert f"training {run.pk}" in listing

    # A second retrain while nothing new was verified adds nothing twice.
    browser.post(PLANS_URL, {"action": "retrain_selected", "_selected_action": [plan.pk]})
    again = Job.objects.filter(kind="retrain").exclude(pk=job.pk).get()
    assert job_run(str(again.pk)) == "done"
    again.refresh_from_db()
    assert again.result["frames_added"] == 0 and again.result["already_in_dataset"] == 4
