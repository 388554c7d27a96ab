"""Posting frames: verdicts, stored images, and every way a frame is refused."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from inspection.models import Inspection
from tests import factories
from tests.conftest import stored_files
from tests.images import BLUE, GREEN, GREY, RED, frame_bytes, huge_png
from tests.registry import ready_version

URL = "/api/v1/inspections/"


def post_frame(client, *, token=None, station="ST1", image=None, name="frame.jpg", **fields):
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    payload = {"station": station, **fields}
    if image is not None:
        payload["image"] = SimpleUploadedFile(name, image, "application/octet-stream")
    return client.post(URL, payload, format="multipart")


@pytest.fixture
def api_client(frame_client):
    """Every test here runs twice: through Django's view and through the lean ASGI route."""
    return frame_client


@pytest.fixture
def device(line_setup, api_client):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    return api_client


def test_good_frame_passes_with_every_field_a_device_needs(device, line_setup):
    image = frame_bytes(RED, size=(640, 480))
    response = post_frame(device, image=image, serial="SN-1", lot="LOT-7")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["verdict"] == "pass"
    assert body["label"] == "ok"
    assert body["defect_type"] is None
    assert body["confidence"] > 0.99
    assert body["top_k"][0]["label"] == "ok"
    assert len(body["top_k"]) == 3
    assert body["model_version"] == {"model": "bottle", "version": line_setup["version"].number}
    assert body["latency_ms"] > 0
    assert body["source"] == "server"
    assert body["review_status"] == "not_required"
    assert body["station"] == "ST1" and body["serial"] == "SN-1" and body["lot"] == "LOT-7"
    assert body["captured_at"] and body["received_at"]
    assert response["Location"].endswith(f"/api/v1/inspections/{body['id']}/")

    # The stored frame is byte for byte what the camera sent, and served behind auth.
    image_response = device.get(body["image_url"])
    assert image_response.status_code == 200
    assert image_response.content == image
    assert image_response["Content-Type"] == "image/jpeg"


def test_defect_above_threshold_fails_and_waits_for_review(device):
    body = post_frame(device, image=frame_bytes(GREEN)).json()
    assert (body["verdict"], body["label"], body["defect_type"]) == (
        "fail",
        "missing_cap",
        "missing_cap",
    )
    assert body["review_status"] == "pending"
    assert body["review_reason"] == "defect"


def test_unsure_frame_goes_to_review(device):
    body = post_frame(device, image=frame_bytes(GREY)).json()
    assert body["verdict"] == "review"
    assert body["review_status"] == "pending"
    assert body["review_reason"] == "low_confidence"
    assert body["confidence"] == pytest.approx(1 / 3, abs=0.01)


def test_png_frames_are_accepted_and_stored_unchanged(device, _media_root):
    image = frame_bytes(BLUE, fmt="PNG")
    body = post_frame(device, image=image, name="frame.png").json()
    assert body["label"] == "crack"
    stored = Inspection.objects.get(pk=body["id"])
    assert stored.image.name.endswith(".png")
    assert (_media_root / stored.image.name).read_bytes() == image


def test_frame_path_is_dated_by_plant_day_and_station(device):
    body = post_frame(device, image=frame_bytes(RED), captured_at="2026-06-30T23:30:00Z").json()
    stored = Inspection.objects.get(pk=body["id"])
    # 23:30 UTC is already 1 July in Paris.
    assert stored.image.name.startswith("frames/2026/07/01/ST1/")
    assert str(stored.local_date) == "2026-07-01"


def test_always_reviewed_defect_type_goes_to_review_not_fail(line_setup, device):
    from masterdata.models import DefectType

    factories.deployment(
        station_obj=line_setup["station"],
        version=line_setup["version"],
        always_review=[DefectType.objects.get(code="missing_cap")],
    )
    body = post_frame(device, image=frame_bytes(GREEN)).json()
    assert (body["verdict"], body["review_reason"]) == ("review", "always_review")


def test_sampled_pass_frames_also_go_to_review(line_setup, device):
    factories.deployment(
        station_obj=line_setup["station"], version=line_setup["version"], pass_review_rate=1.0
    )
    body = post_frame(device, image=frame_bytes(RED)).json()
    assert body["verdict"] == "pass"
    assert (body["review_status"], body["review_reason"]) == ("pending", "sampled_pass")


def test_the_next_frame_is_judged_by_a_newly_activated_version(line_setup, device):
    first = post_frame(device, image=frame_bytes(GREEN)).json()
    assert first["label"] == "missing_cap"
    # Version 2 calls green frames 'ok': same model, labels in another order.
    swapped = ready_version(
        model_name="bottle",
        labels=("missing_cap", "ok", "crack"),
        mapping={"missing_cap": "missing_cap", "ok": None, "crack": "crack"},
    )
    factories.deployment(station_obj=line_setup["station"], version=swapped)
    second = post_frame(device, image=frame_bytes(GREEN)).json()
    assert second["model_version"]["version"] == swapped.number
    assert (second["verdict"], second["label"]) == ("pass", "ok")


def test_a_product_deployment_wins_over_the_station_one(line_setup, device):
    yogurt = factories.product(sku="YOG-125", lines=[line_setup["line"]])
    other = ready_version(
        model_name="yogurt",
        labels=("missing_cap", "ok", "crack"),
        mapping={"missing_cap": "missing_cap", "ok": None, "crack": "crack"},
    )
    factories.deployment(station_obj=line_setup["station"], version=other, product_obj=yogurt)
    body = post_frame(device, image=frame_bytes(GREEN), product="YOG-125").json()
    assert body["model_version"]["model"] == "yogurt"
    assert body["product"] == "YOG-125"


def test_the_only_product_of_the_line_is_implied(line_setup, device):
    factories.product(sku="YOG-125", lines=[line_setup["line"]])
    body = post_frame(device, image=frame_bytes(RED)).json()
    assert body["product"] == "YOG-125"


def test_user_token_with_permission_can_post_frames(line_setup, api_client):
    token = factories.api_token(factories.engineer())
    response = post_frame(api_client, token=token, image=frame_bytes(RED))
    assert response.status_code == 201


# --- Refused frames: a clear JSON error, nothing stored ------------------------


@pytest.fixture
def nothing_stored(line_setup, _media_root):
    """Asserts after the test that no inspection row and no new file exist."""
    before = stored_files(_media_root)
    yield
    assert Inspection.objects.count() == 0
    assert stored_files(_media_root) == before


def truncated_jpeg() -> bytes:
    data = frame_bytes(RED, size=(640, 480))
    return data[: len(data) // 2]


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), RED).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"this is not an image", "not an image"),
        (b"", "empty"),
        (truncated_jpeg(), "damaged"),
        (gif(), "GIF images are not accepted"),
        (huge_png(), "limit"),
    ],
    ids=["not-an-image", "empty", "truncated-jpeg", "gif", "20000x20000-png"],
)
def test_bad_images_are_refused(device, nothing_stored, image, message):
    response = post_frame(device, image=image)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_frame_over_the_size_limit_is_refused(device, nothing_stored, settings):
    settings.LINESIGHT = {**settings.LINESIGHT, "MAX_FRAME_BYTES": 1000}
    response = post_frame(device, image=frame_bytes(RED, size=(640, 480)))
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_frame_over_the_pixel_limit_is_refused_before_decoding(device, nothing_stored, settings):
    settings.LINESIGHT = {**settings.LINESIGHT, "MAX_FRAME_PIXELS": 640 * 480 - 1}
    response = post_frame(device, image=frame_bytes(RED, size=(640, 480)))
    assert response.status_code == 400
    assert "307,200 pixels" in response.json()["detail"]


def test_two_images_in_one_request_are_refused(device, nothing_stored):
    response = device.post(
        URL,
        {
            "station": "ST1",
            "image": [
                SimpleUploadedFile("a.jpg", frame_bytes(RED)),
                SimpleUploadedFile("b.jpg", frame_bytes(RED)),
            ],
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert "one image" in response.json()["detail"]


def test_too_many_files_are_refused(device, nothing_stored):
    files = {f"file{i}": SimpleUploadedFile(f"{i}.jpg", frame_bytes(RED)) for i in range(6)}
    response = device.post(URL, {"station": "ST1", **files}, format="multipart")
    assert response.status_code == 400
    assert "Too many files" in response.json()["detail"]


def test_missing_image_is_refused(device, nothing_stored):
    response = post_frame(device)
    assert response.status_code == 400
    assert response.json()["errors"]["image"]


def test_unknown_station_is_refused(device, nothing_stored):
    response = post_frame(device, station="NOPE", image=frame_bytes(RED))
    assert response.status_code == 400
    assert "station" in response.json()["errors"]


def test_inactive_station_is_refused(line_setup, device, nothing_stored):
    line_setup["station"].active = False
    line_setup["station"].save()
    response = post_frame(device, image=frame_bytes(RED))
    assert response.status_code == 403
    assert "inactive" in response.json()["detail"]


def test_station_without_deployment_is_refused(line_setup, device, nothing_stored):
    from models_registry.services import deployment_deactivate

    deployment_deactivate(deployment=line_setup["deployment"])
    response = post_frame(device, image=frame_bytes(RED))
    assert response.status_code == 409
    assert "No model is deployed to station ST1" in response.json()["detail"]


def test_product_not_run_on_the_line_is_refused(device, nothing_stored):
    factories.product(sku="OTHER", lines=[factories.line()])
    response = post_frame(device, image=frame_bytes(RED), product="OTHER")
    assert response.status_code == 400
    assert "does not run on line L1" in response.json()["detail"]


def test_product_must_be_named_where_the_line_runs_several(line_setup, device, nothing_stored):
    factories.product(sku="A", lines=[line_setup["line"]])
    factories.product(sku="B", lines=[line_setup["line"]])
    response = post_frame(device, image=frame_bytes(RED))
    assert response.status_code == 400
    assert "several products (A, B)" in response.json()["detail"]


def test_future_capture_time_is_refused(device, nothing_stored):
    response = post_frame(device, image=frame_bytes(RED), captured_at="2099-01-01T00:00:00Z")
    assert response.status_code == 400
    assert "device clock" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    [None, "Token lss_wrong", "Token not-a-user-token", "Bearer something", "Token a b"],
    ids=["missing", "wrong-station-token", "wrong-user-token", "other-scheme", "malformed"],
)
def test_bad_credentials_get_401(api_client, nothing_stored, header):
    if header:
        api_client.credentials(HTTP_AUTHORIZATION=header)
    response = post_frame(api_client, image=frame_bytes(RED))
    assert response.status_code == 401
    assert response.json()["detail"]


def test_revoked_and_rotated_tokens_get_401(line_setup, api_client, nothing_stored):
    from masterdata.services import station_token_revoke, station_token_rotate

    old = line_setup["token"]
    station_token_rotate(station=line_setup["station"])
    assert post_frame(api_client, token=old, image=frame_bytes(RED)).status_code == 401
    newer = station_token_rotate(station=line_setup["station"])
    station_token_revoke(station=line_setup["station"])
    assert post_frame(api_client, token=newer, image=frame_bytes(RED)).status_code == 401


def test_token_of_another_station_gets_403(line_setup, api_client, nothing_stored):
    _, other_token = factories.station_with_token(code="ST2", line_obj=line_setup["line"])
    response = post_frame(api_client, token=other_token, image=frame_bytes(RED))
    assert response.status_code == 403
    assert "belongs to station ST2, not ST1" in response.json()["detail"]


def test_user_without_permission_gets_403(api_client, nothing_stored):
    token = factories.api_token(factories.inspector())
    assert post_frame(api_client, token=token, image=frame_bytes(RED)).status_code == 403
