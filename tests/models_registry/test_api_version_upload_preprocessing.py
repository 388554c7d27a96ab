"""A version uploaded with its preprocessing declared, and changed while it serves nowhere."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from models_registry.models import ModelVersion
from models_registry.validation import validate_version_now
from tests import factories
from tests.conftest import stored_files
from tests.registry import artifact_bytes, cached_sandbox

pytestmark = pytest.mark.django_db

DECLARED = {"resize_mode": "letterbox", "value_scale": "-1_1", "color_mode": "grayscale"}


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


@pytest.fixture
def api() -> APIClient:
    return client_for(factories.engineer(username="qe"))


def validations() -> int:
    return DBTaskResult.objects.filter(task_path="models_registry.tasks.validate_version").count()


def upload(api: APIClient, **fields):
    artifact = SimpleUploadedFile("bottle.zip", artifact_bytes(), content_type="application/zip")
    return api.post(
        "/api/v1/models/bottle/versions/",
        {"artifact": artifact, "labels": "ok\nmissing_cap\ncrack", **fields},
        format="multipart",
    )


@pytest.fixture
def model(api):
    assert api.post("/api/v1/models/", {"name": "bottle"}, format="json").status_code == 201


@pytest.mark.slow
def test_declared_preprocessing_is_kept_through_validation(api, model):
    response = upload(api, **DECLARED, resize_interpolation="area")

    assert response.status_code == 201, response.content
    assert response.json()["preprocessing"] == {
        **DECLARED,
        "resize_interpolation": "area",
        "jpeg_draft": False,
    }
    validate_version_now(ModelVersion.objects.get().pk, sandbox=cached_sandbox)
    body = api.get("/api/v1/models/bottle/versions/1/").json()
    assert body["status"] == "ready", body["status_reason"]
    assert body["preprocessing"]["resize_mode"] == "letterbox"
    assert body["preprocessing"]["value_scale"] == "-1_1"
    assert body["preprocessing"]["color_mode"] == "grayscale"


def test_undeclared_preprocessing_gets_the_defaults(api, model):
    response = upload(api)

    assert response.json()["preprocessing"]["resize_mode"] == "stretch"
    assert response.json()["preprocessing"]["value_scale"] == "0_1"
    assert response.json()["preprocessing"]["color_mode"] == "rgb"


@pytest.mark.parametrize(
    "fields",
    [{"resize_mode": "squash"}, {"value_scale": "0_2"}, {"color_mode": "cmyk"}],
)
def test_unknown_preprocessing_is_refused_and_nothing_is_stored(api, model, fields, _media_root):
    response = upload(api, **fields)

    assert response.status_code == 400
    assert next(iter(fields)) in response.json()["detail"]
    assert not ModelVersion.objects.exists()
    assert stored_files(_media_root) == []
    assert validations() == 0


# --- PATCH while it serves nowhere --------------------------------------------------


def test_patch_changes_preprocessing_of_a_version_that_serves_nowhere(
    api, django_capture_on_commit_callbacks
):
    factories.version_row(model_name="bottle")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(
            "/api/v1/models/bottle/versions/1/",
            {"resize_mode": "center_crop", "notes": "trained on crops"},
            format="json",
        )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["preprocessing"]["resize_mode"] == "center_crop"
    assert body["notes"] == "trained on crops"
    assert body["status"] == "ready"  # nothing validation checked has changed
    assert validations() == 0


def test_a_new_value_scale_validates_the_version_again(api, django_capture_on_commit_callbacks):
    factories.version_row(model_name="bottle")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(
            "/api/v1/models/bottle/versions/1/", {"value_scale": "-1_1"}, format="json"
        )

    assert response.status_code == 200
    assert response.json()["preprocessing"]["value_scale"] == "-1_1"
    assert response.json()["status"] == "uploaded"  # queued: poll until ready
    assert validations() == 1


def test_patch_on_a_deployed_version_is_a_409_and_changes_nothing(api):
    version = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)

    response = api.patch(
        "/api/v1/models/bottle/versions/1/",
        {"resize_mode": "letterbox", "notes": "x"},
        format="json",
    )

    assert response.status_code == 409
    assert "serves CAP-1" in response.json()["detail"]
    version.refresh_from_db()
    assert (version.resize_mode, version.notes) == ("stretch", "")


def test_notes_of_a_deployed_version_change_over_the_api(api):
    version = factories.version_row(model_name="bottle")
    factories.deployment(station_obj=factories.station(code="CAP-1"), version=version)

    response = api.patch("/api/v1/models/bottle/versions/1/", {"notes": "v2 soon"}, format="json")

    assert response.status_code == 200, response.content
    version.refresh_from_db()
    assert version.notes == "v2 soon"


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({}, "Name at least one"),
        ({"resize_mode": "squash"}, "resize_mode"),
        ({"value_scale": "-1_1"}, "0..255"),  # a uint8 model's values are 0..255
        ({"color_mode": "rgb"}, "one channel"),
        ({"jpeg_draft": "maybe"}, "jpeg_draft"),
    ],
)
def test_bad_patch_is_a_400_and_changes_nothing(
    api, fields, word, django_capture_on_commit_callbacks
):
    version = factories.version_row(
        model_name="bottle", value_scale="0_255", color_mode="grayscale"
    )
    # A greyscale uint8 signature, as validation would have read it.
    ModelVersion.objects.filter(pk=version.pk).update(input_dtype="uint8", input_channels=1)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch("/api/v1/models/bottle/versions/1/", fields, format="json")

    assert response.status_code == 400
    assert word in response.json()["detail"]
    version.refresh_from_db()
    assert (version.value_scale, version.color_mode, version.resize_mode) == (
        "0_255",
        "grayscale",
        "stretch",
    )
    assert validations() == 0


@pytest.mark.parametrize("role", ["viewer", "inspector"])
def test_only_engineers_change_a_version(role):
    factories.version_row(model_name="bottle")
    client = client_for(getattr(factories, role)())

    response = client.patch(
        "/api/v1/models/bottle/versions/1/", {"resize_mode": "letterbox"}, format="json"
    )

    assert response.status_code == 403
    assert ModelVersion.objects.get().resize_mode == "stretch"
