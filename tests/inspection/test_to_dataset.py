"""A dataset from verified inspections: the inspectors' final word as labels, the frames'
original bytes, a new snapshot; through the API and the inspections' admin action."""

import datetime as dt

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from common.jobs import job_run
from common.models import Job
from inspection.models import Inspection
from models_registry.datasets.models import Dataset, DatasetImage, DatasetLabel
from models_registry.datasets.services import IncomingImage, dataset_add_images, dataset_create
from tests import factories
from tests.browser import scene
from tests.conftest import stored_files
from tests.images import BLUE, GREEN, GREY, RED, frame_bytes

pytestmark = pytest.mark.django_db

URL = "/api/v1/datasets/from-inspections/"


@pytest.fixture
def plant():
    return scene.build()


@pytest.fixture
def alice():
    return factories.inspector(username="alice")


@pytest.fixture
def engineer_api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.engineer())}")
    return client


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def photographed(deployment, colour, *, verdict="fail", label="missing_cap", **fields):
    """A frame with real JPEG bytes (distinct per colour and size), as the API stores it."""
    frame = scene.frame(deployment, verdict=verdict, label=label, broadcast=False, **fields)
    data = frame_bytes(colour, size=(40 + frame.pk, 30), quality=90)
    frame.image.save(f"frames/test/{frame.pk}.jpg", ContentFile(data), save=True)
    return frame, data


def decide(user, frame: Inspection, **body) -> dict:
    response = as_user(user).post(
        f"/api/v1/inspections/{frame.pk}/verifications/", body, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def decided(plant, alice):
    """Frames of station 0 with the decisions inspectors made, and one of station 1."""
    d0, d1 = plant.deployments
    frames = {}
    frames["confirmed_defect"] = photographed(d0, RED)
    decide(alice, frames["confirmed_defect"][0], decision="confirm")
    frames["corrected"] = photographed(d0, GREEN)
    decide(alice, frames["corrected"][0], decision="correct", defect_type="crack")
    frames["confirmed_pass"] = photographed(
        d0, BLUE, verdict="pass", label="ok", review_status="pending"
    )
    decide(alice, frames["confirmed_pass"][0], decision="confirm")
    frames["undone"] = photographed(d0, GREY)
    first = decide(alice, frames["undone"][0], decision="confirm")
    undo = as_user(alice).post(f"/api/v1/verifications/{first['id']}/undo/")
    assert undo.status_code == 200
    decide(alice, frames["undone"][0], decision="reject", supersedes=first["id"])
    frames["pending"] = photographed(d0, (10, 200, 10))  # never decided
    frames["other_station"] = photographed(d1, (200, 10, 200))
    decide(alice, frames["other_station"][0], decision="confirm")
    return frames


def run_from_api(api: APIClient, body: dict) -> dict:
    response = api.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["kind"] == "dataset_from_inspections" and job["state"] == "queued"
    assert Job.objects.get(pk=job["id"]).queue == "imports"
    job_run(job["id"])
    return api.get(f"/api/v1/jobs/{job['id']}/").json()


def labels_by_frame(dataset: Dataset) -> dict[int, str]:
    return dict(
        DatasetImage.objects.filter(dataset=dataset).values_list("inspection_id", "label__name")
    )


def test_the_inspectors_final_decision_is_the_label_and_the_bytes_are_the_frames(
    engineer_api, plant, decided
):
    station = plant.stations[0].code

    job = run_from_api(engineer_api, {"dataset": "verified", "station": station})

    assert job["state"] == "done", job["error"]
    dataset = Dataset.objects.get(name="verified")
    by_frame = labels_by_frame(dataset)
    ids = {name: frame.pk for name, (frame, _) in decided.items()}
    assert by_frame == {
        ids["confirmed_defect"]: "missing_cap",  # the model's call, confirmed
        ids["corrected"]: "crack",  # the correction wins
        ids["confirmed_pass"]: "ok",  # a confirmed pass is the no-defect label
        ids["undone"]: "ok",  # the undone confirmation is replaced by the reject
    }
    meanings = {label.name: label.meaning for label in dataset.labels.all()}
    assert meanings == {"crack": "crack", "missing_cap": "missing_cap", "ok": "no defect"}
    for name in ("confirmed_defect", "corrected", "confirmed_pass", "undone"):
        frame, data = decided[name]
        image = DatasetImage.objects.get(dataset=dataset, inspection_id=frame.pk)
        assert image.source == "inspection"
        assert image.file.open("rb").read() == data  # never re-encoded
        assert image.thumbnail  # made once, at import
    snapshot = dataset.snapshots.get()
    assert snapshot.image_count == 4 and job["result"]["snapshot"] == 1
    assert job["result"]["per_label"] == {"crack": 1, "missing_cap": 1, "ok": 2}


def test_only_frames_where_the_inspector_disagreed(engineer_api, plant, decided):
    job = run_from_api(
        engineer_api,
        {"dataset": "disputed", "line": plant.line.code, "disagreed_only": True},
    )

    assert job["state"] == "done", job["error"]
    ids = {name: frame.pk for name, (frame, _) in decided.items()}
    assert labels_by_frame(Dataset.objects.get(name="disputed")) == {
        ids["corrected"]: "crack",
        ids["undone"]: "ok",
    }


def test_frames_go_into_an_existing_dataset_under_its_labels_as_a_new_snapshot(
    engineer_api, plant, decided
):
    dataset = dataset_create(name="bottles")
    DatasetLabel.objects.create(dataset=dataset, name="good", no_defect=True)
    job = run_from_api(engineer_api, {"dataset": "bottles", "station": plant.stations[0].code})
    assert job["state"] == "done", job["error"]
    # The dataset's own no-defect label, whatever its name.
    assert sorted(labels_by_frame(dataset).values()) == ["crack", "good", "good", "missing_cap"]

    again = run_from_api(engineer_api, {"dataset": "bottles", "station": plant.stations[0].code})

    # The same frames again: exact duplicates, counted and skipped; a second snapshot.
    assert again["state"] == "done" and again["result"]["duplicates"] == 4
    assert again["result"]["imported"] == 0
    assert list(dataset.snapshots.order_by("number").values_list("number", "image_count")) == [
        (1, 4),
        (2, 4),
    ]


def test_dates_filter_on_the_plant_date(engineer_api, plant, alice):
    d0 = plant.deployments[0]
    old, _ = photographed(d0, RED, captured_at=dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC))
    new, _ = photographed(d0, GREEN, captured_at=dt.datetime(2026, 2, 5, 12, tzinfo=dt.UTC))
    for frame in (old, new):
        decide(alice, frame, decision="confirm")

    job = run_from_api(
        engineer_api, {"dataset": "february", "from": "2026-02-01", "to": "2026-02-28"}
    )

    assert job["state"] == "done", job["error"]
    assert set(labels_by_frame(Dataset.objects.get(name="february"))) == {new.pk}


def test_nothing_matching_is_refused_before_any_job_or_dataset(engineer_api, plant, decided):
    body = {"dataset": "nothing", "from": "2030-01-01"}
    response = engineer_api.post(URL, body, format="json")

    assert response.status_code == 400 and "No verified inspection" in response.json()["detail"]
    assert not Dataset.objects.filter(name="nothing").exists() and not Job.objects.exists()
    backwards = engineer_api.post(
        URL, {"dataset": "x", "from": "2026-02-01", "to": "2026-01-01"}, format="json"
    )
    assert backwards.status_code == 400
    unknown = engineer_api.post(URL, {"dataset": "x", "station": "NOPE"}, format="json")
    assert unknown.status_code == 400


def test_inspectors_may_not_build_datasets(plant, decided, alice):
    response = as_user(alice).post(URL, {"dataset": "mine"}, format="json")

    assert response.status_code == 403
    assert not Dataset.objects.exists()


def test_the_inspections_admin_action_opens_the_form_that_queues_the_job(client, plant, decided):
    client.force_login(factories.engineer())
    frame = decided["corrected"][0]
    listing = "/admin/inspection/inspection/"

    chosen = client.post(
        listing, {"action": "dataset_from_selection", "_selected_action": [frame.pk]}
    )

    assert chosen.status_code == 302
    form_page = client.get(chosen["Location"])
    assert form_page.status_code == 200
    assert form_page.context["form"].initial["station"] == str(plant.stations[0].pk)
    queued = client.post(
        "/admin/inspection/inspection/to-dataset/",
        {"dataset": "from-admin", "station": plant.stations[0].pk, "disagreed_only": "on"},
    )
    job = Job.objects.get(kind="dataset_from_inspections")
    dataset = Dataset.objects.get(name="from-admin")
    assert queued["Location"] == f"/admin/models_registry/dataset/{dataset.pk}/jobs/{job.pk}/"
    job_run(str(job.pk))
    report = client.get(queued["Location"])
    assert report.status_code == 200 and report.context["per_label"] == [("crack", 1), ("ok", 1)]
    refused = client.post(
        "/admin/inspection/inspection/to-dataset/", {"dataset": "none", "date_from": "2031-01-01"}
    )
    assert refused.status_code == 200 and "No verified inspection" in refused.content.decode()


def test_inspectors_do_not_get_the_admin_form(client, plant):
    client.force_login(factories.inspector(is_staff=True))

    response = client.get("/admin/inspection/inspection/to-dataset/")

    assert response.status_code == 403


def test_a_frame_that_is_not_a_sound_image_is_skipped_with_its_reason(
    engineer_api, plant, alice, _media_root
):
    d0 = plant.deployments[0]
    sound, _ = photographed(d0, RED)
    broken = scene.frame(d0, verdict="fail", label="crack", broadcast=False)  # 4 bytes
    gone, _ = photographed(d0, GREEN)
    for frame in (sound, broken, gone):
        decide(alice, frame, decision="confirm")
    gone.image.storage.delete(gone.image.name)

    job = run_from_api(engineer_api, {"dataset": "mixed"})

    assert job["state"] == "done", job["error"]
    assert set(labels_by_frame(Dataset.objects.get(name="mixed"))) == {sound.pk}
    reasons = {row["file"]: row["reason"] for row in job["result"]["skipped"]}
    assert reasons == {
        f"inspection-{broken.pk}.jpg": "not an image (JPEG, PNG, BMP or TIFF expected)",
        f"inspection-{gone.pk}.jpg": "the frame's file is missing",
    }
    assert job["result"]["skipped_count"] == 2


def test_adding_verified_images_is_all_or_nothing(_media_root):
    dataset = dataset_create(name="half")

    def images():
        yield IncomingImage(data=frame_bytes(RED), label="ok", name="a.jpg")
        raise RuntimeError("the worker was told to stop")

    with pytest.raises(RuntimeError):
        dataset_add_images(dataset=dataset, images=images())

    assert not DatasetImage.objects.exists() and not dataset.labels.exists()
    assert not [name for name in stored_files(_media_root) if name.startswith("datasets/")]
