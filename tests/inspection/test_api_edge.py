"""Edge mode: devices that run the model themselves and post their result."""

import hashlib

import pytest

from inspection.models import Inspection
from tests import factories
from tests.conftest import stored_files
from tests.images import GREEN, RED, frame_bytes
from tests.inspection.test_api_frames import post_frame


@pytest.fixture
def api_client(frame_client):
    """Every test here runs twice: through Django's view and through the lean ASGI route."""
    return frame_client


@pytest.fixture
def device(line_setup, api_client):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    return api_client


def edge_fields(line_setup, label="ok", confidence=0.97, **extra):
    version = line_setup["version"]
    return {
        "label": label,
        "confidence": confidence,
        "model_version": f"bottle:{version.number}",
        **extra,
    }


def test_manifest_gives_what_a_device_needs_to_run_the_model(line_setup, device):
    response = device.get("/api/v1/stations/ST1/model/")
    assert response.status_code == 200
    manifest = response.json()
    version = line_setup["version"]
    assert (manifest["model"], manifest["version"]) == ("bottle", version.number)
    assert manifest["sha256"] == version.sha256
    assert [(x["label"], x["defect_type"], x["no_defect"]) for x in manifest["labels"]] == [
        ("ok", None, True),
        ("missing_cap", "missing_cap", False),
        ("crack", "crack", False),
    ]
    assert manifest["preprocessing"]["input_height"] == 32
    assert manifest["thresholds"]["confidence_threshold"] == 0.8

    tflite = device.get(manifest["artifacts"]["tflite"]["url"])
    assert tflite.status_code == 200
    data = b"".join(tflite.streaming_content)
    assert hashlib.sha256(data).hexdigest() == manifest["artifacts"]["tflite"]["sha256"]
    saved = device.get(manifest["artifacts"]["savedmodel"]["url"])
    assert b"".join(saved.streaming_content)[:2] == b"PK"


def test_manifest_of_another_station_is_forbidden_to_a_device(line_setup, device):
    factories.station(code="ST2", line_obj=line_setup["line"])
    assert device.get("/api/v1/stations/ST2/model/").status_code == 403


def test_edge_result_is_stored_with_the_verdict_by_the_same_rules(line_setup, device):
    response = post_frame(
        device, image=frame_bytes(GREEN), **edge_fields(line_setup, "missing_cap", 0.93)
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["source"], body["verdict"], body["defect_type"]) == ("edge", "fail", "missing_cap")
    assert body["confidence"] == pytest.approx(0.93)
    assert body["edge_rechecked"] is False


def test_edge_top_k_is_kept(line_setup, device):
    top_k = '[{"label": "ok", "confidence": 0.6}, {"label": "crack", "confidence": 0.3}]'
    body = post_frame(
        device, image=frame_bytes(RED), **edge_fields(line_setup, "ok", 0.6, top_k=top_k)
    ).json()
    assert body["verdict"] == "review"  # 0.6 is under the 0.8 confidence threshold
    assert [e["label"] for e in body["top_k"]][:2] == ["ok", "crack"]


def test_rechecked_edge_frame_that_disagrees_goes_to_review(line_setup, device):
    factories.deployment(
        station_obj=line_setup["station"], version=line_setup["version"], edge_recheck_rate=1.0
    )
    # The device says 'ok'; the server sees a green frame: missing cap.
    body = post_frame(
        device, image=frame_bytes(GREEN), **edge_fields(line_setup, "ok", 0.99)
    ).json()
    assert (body["verdict"], body["review_reason"]) == ("review", "edge_disagreement")
    assert body["edge_rechecked"] and body["edge_disagreement"]
    stored = Inspection.objects.get(pk=body["id"])
    assert stored.server_label == "missing_cap"
    assert Inspection.objects.filter(edge_disagreement=True).count() == 1


def test_rechecked_edge_frame_that_agrees_keeps_its_verdict(line_setup, device):
    factories.deployment(
        station_obj=line_setup["station"], version=line_setup["version"], edge_recheck_rate=1.0
    )
    body = post_frame(device, image=frame_bytes(RED), **edge_fields(line_setup, "ok", 0.99)).json()
    assert (body["verdict"], body["edge_rechecked"], body["edge_disagreement"]) == (
        "pass",
        True,
        False,
    )


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"model_version": "bottle:99"}, 409, "download the current model"),
        ({"model_version": "other:1"}, 409, "download the current model"),
        ({"label": "scratch"}, 400, "has no label 'scratch'"),
        ({"model_version": "bottle"}, 400, "model:number"),
        ({"confidence": 1.5}, 400, "confidence"),
        ({"top_k": "not json"}, 400, "JSON list"),
        ({"top_k": '[{"label": "crack", "confidence": 0.99}]'}, 400, "not the top label"),
    ],
    ids=[
        "unknown-version",
        "other-model",
        "unknown-label",
        "malformed-version",
        "confidence",
        "bad-top-k",
        "top-k-contradicts",
    ],
)
def test_edge_results_the_station_cannot_have_are_refused(
    line_setup, device, _media_root, fields, status, message
):
    before = stored_files(_media_root)
    response = post_frame(device, image=frame_bytes(RED), **{**edge_fields(line_setup), **fields})
    assert response.status_code == status
    assert message in str(response.json())
    assert Inspection.objects.count() == 0
    assert stored_files(_media_root) == before


def test_partial_edge_result_is_refused(line_setup, device):
    response = post_frame(device, image=frame_bytes(RED), label="ok")
    assert response.status_code == 400
    assert "confidence, model_version" in response.json()["detail"]
