"""Champion/challenger before promotion: a trained version against a station's deployed
version, on the training snapshot and on the station's latest verified frames; deployed
only through the ordinary activation (history, rollback)."""

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from common.jobs import job_run
from common.models import Job
from masterdata.models import DefectType
from models_registry import selectors, services
from models_registry.evaluation.models import Evaluation
from models_registry.models import DeploymentHistory
from models_registry.training.models import TrainingRun
from tests import factories
from tests.models_registry.test_admin import activation_data
from tests.models_registry.test_api import client_for
from tests.models_registry.test_training import part_photo, snapshot_from, start
from tests.registry import ready_version

pytestmark = pytest.mark.django_db
KIND = "champion_challenger"


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


def verified_frames(deployment, count: int) -> None:
    """Frames of the station an inspector decided: every other one a scratched part."""
    scratch = DefectType.objects.get(code="surface_scratch")
    for index in range(count):
        scratched = index % 2 == 1
        row = factories.inspection_row(
            deployment_obj=deployment, verdict="pass", label="good", review_status="verified"
        )
        row.final_is_defect = scratched
        row.final_defect_type = scratch if scratched else None
        row.image.save(f"p{index}.png", ContentFile(part_photo(500 + index, scratched=scratched)))


def compare(api, run_id: int, **body):
    return api.post(f"/api/v1/trainings/{run_id}/compare/", body, format="json")


def test_a_trained_version_is_compared_with_the_champion_then_deployed_and_rolled_back(
    api, browser
):
    snapshot = snapshot_from(api, "parts", {"good": 16, "scratch": 16})
    body = start(api, snapshot).json()
    run_id = body["id"]
    # Not before the run has a version.
    early = compare(api, run_id, station="SCR-1")
    assert early.status_code == 400
    assert job_run(body["job"]["id"]) == "done"
    trained = TrainingRun.objects.select_related("version").get().version

    station = factories.station(code="SCR-1")
    nothing = compare(api, run_id, station="SCR-1")
    assert nothing.status_code == 400 and "no champion" in nothing.content.decode()
    assert compare(api, run_id, station="NOPE").status_code == 400
    champion = ready_version(
        model_name="scratches-old",
        labels=["good", "scratch"],
        mapping={"good": None, "scratch": "surface_scratch"},
    )
    deployment = factories.deployment(station_obj=station, version=champion)
    assert compare(api, run_id, station="SCR-1", frames=0).status_code == 400
    assert not Job.objects.filter(kind=KIND).exists()
    evaluations_before = Evaluation.objects.count()
    verified_frames(deployment, 6)

    response = compare(api, run_id, station="SCR-1", frames=4)
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["kind"] == KIND and job["state"] == "queued"
    assert response["Location"].endswith(f"/api/v1/jobs/{job['id']}/")
    # The snapshot side is the evaluation's side-by-side run, champion first.
    assert Evaluation.objects.count() == evaluations_before + 1
    evaluation = Evaluation.objects.get(pk=Job.objects.get(pk=job["id"]).payload["evaluation"])
    assert (evaluation.version, evaluation.challenger) == (champion, trained)
    assert evaluation.snapshot == snapshot and evaluation.split == "test"
    assert job_run(str(evaluation.job_id)) == "done"
    assert job_run(job["id"]) == "done"

    result = api.get(f"/api/v1/jobs/{job['id']}/").json()["result"]
    production = result["production"]
    assert result["champion"] == str(champion) and result["challenger"] == str(trained)
    assert production["frames"] == 4 and production["defective"] == 2  # the latest 4 of 6
    for side in ("champion", "challenger"):
        figures = production[side]
        assert 0.0 <= figures["accuracy"] <= 1.0 and 0.0 <= figures["macro_f1"] <= 1.0
        assert set(figures["per_class_f1"]) == {"no defect", "surface_scratch"}
        assert figures["escapes"] + figures["false_rejects"] <= 4
    listed = api.get(f"/api/v1/trainings/{run_id}/compare/").json()
    assert [item["id"] for item in listed] == [job["id"]]

    # Admin shows both comparisons side by side and offers the ordinary deployment.
    run = TrainingRun.objects.get()
    page = browser.get(f"/admin/models_registry/trainingrun/{run.pk}/compare/").content.decode()
    assert "On the station&#x27;s latest verified frames" in page or "latest verified" in page
    assert "(4 images)" in page and "macro-F1" in page and "F1 surface_scratch" in page
    assert "escapes" in page and "false rejects" in page
    assert f"?station={station.pk}&amp;version={trained.pk}" in page
    assert "Deploy challenger to SCR-1" in page
    change = browser.get(f"/admin/models_registry/trainingrun/{run.pk}/change/").content.decode()
    assert 'id="training-compare"' in change

    activated = browser.post(
        "/admin/models_registry/deployment/add/",
        activation_data(station=station, version=trained),
    )
    assert activated.status_code == 302
    assert selectors.active_deployment(station=station).version == trained
    assert DeploymentHistory.objects.filter(station=station, action="activate").count() == 2
    services.deployment_rollback(station=station)
    assert selectors.active_deployment(station=station).version == champion


def test_the_compare_page_starts_a_comparison_and_refuses_bad_input(api, browser):
    snapshot = snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    body = start(api, snapshot).json()
    run = TrainingRun.objects.get(pk=body["id"])
    url = f"/admin/models_registry/trainingrun/{run.pk}/compare/"
    page = browser.get(url)
    assert page.status_code == 200 and 'id="no-comparisons"' in page.content.decode()
    # No station serves anything: the form offers none and refuses the post.
    refused = browser.post(url, {"station": "", "frames": "10"})
    assert refused.status_code == 200 and not Job.objects.filter(kind=KIND).exists()
    # A queued run: refused by the service with its reason, nothing started.
    station = factories.station(code="SCR-2")
    factories.deployment(station_obj=station, version=factories.version_row(model_name="old"))
    response = browser.post(url, {"station": station.pk, "frames": "10"}, follow=True)
    assert "compare it once it has a version" in response.content.decode()
    assert not Job.objects.filter(kind=KIND).exists()
