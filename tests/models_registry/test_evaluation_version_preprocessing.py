"""A version declares how frames are decoded and resized: at upload (API and admin form),
changeable while it serves nowhere, and the manifest a device reads carries it."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from models_registry.forms import VersionUploadForm
from models_registry.models import MLModel, ModelVersion
from models_registry.services import model_create, version_update
from tests import factories
from tests.models_registry.test_api import client_for, savedmodel_zip, upload
from tests.registry import ready_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    model_create(name="bottle")
    return client_for(factories.engineer(username="qe"))


def test_an_uploaded_version_gets_the_exact_path_by_default(api):
    response = upload(api)
    assert response.status_code == 201, response.json()
    assert response.json()["preprocessing"]["resize_interpolation"] == "bilinear"
    assert response.json()["preprocessing"]["jpeg_draft"] is False


def test_interpolation_and_fast_decoding_are_set_at_upload(api):
    response = upload(api, resize_interpolation="bilinear_tf", jpeg_draft="true")
    assert response.status_code == 201, response.json()
    version = ModelVersion.objects.get()
    assert (version.resize_interpolation, version.jpeg_draft) == ("bilinear_tf", True)


def test_an_unknown_interpolation_is_refused_at_upload(api):
    response = upload(api, resize_interpolation="bicubic")
    assert response.status_code == 400
    assert "resize_interpolation" in response.json()["errors"]
    assert ModelVersion.objects.count() == 0


def test_the_admin_upload_form_offers_the_decoding():
    model = MLModel.objects.create(name="bottle")
    form = VersionUploadForm(
        data={"model": model.pk, "resize_interpolation": "area", "jpeg_draft": "on"},
        files={"artifact": SimpleUploadedFile("m.zip", savedmodel_zip().read())},
    )
    assert form.is_valid(), form.errors
    assert form.preprocessing() == {"resize_interpolation": "area", "jpeg_draft": True}
    unchecked = VersionUploadForm(
        data={"model": model.pk, "resize_interpolation": "bilinear"},
        files={"artifact": SimpleUploadedFile("m.zip", savedmodel_zip().read())},
    )
    assert unchecked.is_valid(), unchecked.errors
    assert unchecked.preprocessing()["jpeg_draft"] is False


def test_preprocessing_changes_only_while_the_version_serves_nowhere():
    version = ready_version(model_name="bottle")
    version_update(version=version, resize_interpolation="area", jpeg_draft=True)
    version.refresh_from_db()
    assert (version.resize_interpolation, version.jpeg_draft) == ("area", True)

    factories.deployment(station_obj=factories.station(code="ST1"), version=version)
    for change in ({"jpeg_draft": False}, {"value_scale": "-1_1"}, {"resize_mode": "letterbox"}):
        with pytest.raises(ValidationError, match="serves ST1"):
            version_update(version=version, **change)
    version.refresh_from_db()
    assert (version.jpeg_draft, version.value_scale, version.resize_mode) == (
        True,
        "0_1",
        "stretch",
    )


def test_the_device_manifest_carries_the_decoding(api_client):
    version = ready_version(model_name="bottle")
    version_update(version=version, resize_interpolation="bilinear_tf")
    station, token = factories.station_with_token(code="ST1")
    factories.deployment(station_obj=station, version=version)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    manifest = api_client.get("/api/v1/stations/ST1/model/").json()
    assert manifest["preprocessing"]["resize_interpolation"] == "bilinear_tf"
    assert manifest["preprocessing"]["jpeg_draft"] is False
