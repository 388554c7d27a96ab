"""Active learning: a deployment sends the passes its model was least sure of to review
("Model unsure between two labels"), at most a daily number per station."""

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from inspection.models import Inspection
from inspection.verdict import DecisionRules, LabelMeaning, judge
from models_registry.decision import margin
from models_registry.models import Deployment
from tests import factories
from tests.images import RED, frame_bytes
from tests.inspection.test_api_edge import edge_fields
from tests.inspection.test_api_frames import post_frame

ORANGE_RED = (255, 230, 0)


def rules(**overrides) -> DecisionRules:
    return DecisionRules(
        deployment_id=1,
        version_id=1,
        labels=(LabelMeaning("ok", None), LabelMeaning("crack", 20, "crack")),
        confidence_threshold=overrides.pop("confidence_threshold", 0.5),
        **overrides,
    )


def test_a_pass_the_model_hesitated_on_goes_to_review_as_low_margin():
    result = judge([0.6, 0.4], rules(low_margin_review=0.3))
    assert margin([0.6, 0.4]) == pytest.approx(0.2)
    assert (result.verdict, result.review_status, result.review_reason) == (
        "pass",
        "pending",
        "low_margin",
    )
    sure = judge([0.9, 0.1], rules(low_margin_review=0.3))
    assert (sure.review_status, sure.review_reason) == ("not_required", "")


def test_low_margin_review_is_off_by_default_and_when_the_cap_is_reached():
    assert judge([0.6, 0.4], rules()).review_status == "not_required"
    full = judge([0.6, 0.4], rules(low_margin_review=0.3), low_margin_room=lambda: False)
    assert (full.verdict, full.review_status) == ("pass", "not_required")


def test_fails_keep_their_reason_and_the_audit_sample_stays_random():
    # A fail always waits for an inspector, as a defect, however close the call.
    failed = judge([0.45, 0.55], rules(low_margin_review=0.3, defect_thresholds={20: 0.5}))
    assert (failed.verdict, failed.review_reason) == ("fail", "defect")
    # A sampled pass stays in the escape sample, so the escape estimate is not biased.
    sampled = judge([0.6, 0.4], rules(low_margin_review=0.3, pass_review_rate=1.0), sample=0.0)
    assert sampled.review_reason == "sampled_pass"


@pytest.fixture
def device(line_setup, api_client):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {line_setup['token']}")
    return api_client


def unsure_ok(line_setup) -> dict:
    """An edge result: 'ok' at 0.6, 'missing_cap' at 0.35 (a 0.25 margin)."""
    top_k = '[{"label": "ok", "confidence": 0.6}, {"label": "missing_cap", "confidence": 0.35}]'
    return edge_fields(line_setup, "ok", 0.6, top_k=top_k)


@pytest.mark.django_db
def test_unsure_passes_go_to_review_up_to_the_daily_cap_of_the_station(line_setup, device):
    factories.deployment(
        station_obj=line_setup["station"],
        version=line_setup["version"],
        confidence_threshold=0.5,
        low_margin_review=0.3,
        low_margin_daily_cap=2,
    )
    bodies = [
        post_frame(device, image=frame_bytes(RED), **unsure_ok(line_setup)).json() for _ in range(3)
    ]
    assert [b["verdict"] for b in bodies] == ["pass"] * 3
    assert [(b["review_status"], b["review_reason"]) for b in bodies] == [
        ("pending", "low_margin"),
        ("pending", "low_margin"),
        ("not_required", ""),  # the cap of 2 a day is reached
    ]
    # A sure pass never counts against it.
    sure = post_frame(device, image=frame_bytes(RED), **edge_fields(line_setup, "ok", 0.97))
    assert sure.json()["review_status"] == "not_required"

    # The inspector sees why the frame waits, on the queue and on the frame's page.
    inspector = APIClient()
    inspector.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.inspector())}")
    queue = inspector.get("/api/v1/review/queue/")
    assert queue.status_code == 200 and "low_margin" in queue.content.decode()
    inspection = Inspection.objects.get(pk=bodies[0]["id"])
    assert inspection.get_review_reason_display() == "Model unsure between two labels"


@pytest.mark.django_db
def test_a_server_judged_pass_below_the_margin_goes_to_review(line_setup, device):
    # The colour model calls orange-red 'ok' at about 0.95 against 0.05 for 'missing_cap':
    # a pass, not sent to review by default; a margin setting above its lead sends it.
    first = post_frame(device, image=frame_bytes(ORANGE_RED)).json()
    assert first["verdict"] == "pass" and first["label"] == "ok"
    lead = first["top_k"][0]["confidence"] - first["top_k"][1]["confidence"]
    assert first["review_status"] == "not_required"
    factories.deployment(
        station_obj=line_setup["station"],
        version=line_setup["version"],
        low_margin_review=lead + 0.01,
    )
    body = post_frame(device, image=frame_bytes(ORANGE_RED)).json()
    assert (body["verdict"], body["review_status"], body["review_reason"]) == (
        "pass",
        "pending",
        "low_margin",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"low_margin_review": 1.5}, "low_margin_review"),
        ({"low_margin_review": -0.1}, "low_margin_review"),
        ({"low_margin_daily_cap": -1}, "low_margin_daily_cap"),
        ({"low_margin_daily_cap": 2.5}, "low_margin_daily_cap"),
    ],
)
def test_bad_low_margin_settings_are_refused_and_nothing_changes(line_setup, options, field):
    before = list(Deployment.objects.values_list("pk", "is_active"))
    with pytest.raises(ValidationError) as refused:
        factories.deployment(
            station_obj=line_setup["station"], version=line_setup["version"], **options
        )
    assert field in refused.value.message_dict
    assert list(Deployment.objects.values_list("pk", "is_active")) == before
