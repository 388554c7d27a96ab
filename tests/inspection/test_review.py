"""The review queue's rules through its API: decisions, claims, undo, order, permissions."""

import datetime as dt

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from inspection import events
from inspection.models import Inspection, Verification
from tests import factories
from tests.browser import scene

pytestmark = pytest.mark.django_db

HOSTILE = '"><img src=x onerror=alert(1)><script>alert("x")</script>'


@pytest.fixture
def plant():
    return scene.build()


@pytest.fixture
def alice(api_client):
    user = factories.inspector(username="alice")
    api_client.force_authenticate(user)
    return user


def decide(client, inspection, **body):
    return client.post(f"/api/v1/inspections/{inspection.pk}/verifications/", body, format="json")


def as_user(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def pending(plant, *, station=0, label="missing_cap", **fields):
    return scene.frame(
        plant.deployments[station], verdict="fail", label=label, broadcast=False, **fields
    )


# --- Decisions ------------------------------------------------------------------


def test_confirm_keeps_the_models_defect_and_closes_the_review(api_client, alice, plant):
    frame = pending(plant)
    response = decide(api_client, frame, decision="confirm", time_spent_ms=812)
    assert response.status_code == 201, response.content
    assert response.json()["inspector"] == "alice"
    assert response.json()["defect_type"] == "missing_cap"
    frame.refresh_from_db()
    assert frame.review_status == "verified"
    assert frame.final_defect_type.code == "missing_cap" and frame.final_is_defect
    [record] = Verification.objects.filter(inspection=frame)
    assert (record.decision, record.time_spent_ms, record.inspector) == ("confirm", 812, alice)


def test_reject_says_the_part_is_good(api_client, alice, plant):
    frame = pending(plant)
    assert decide(api_client, frame, decision="reject").status_code == 201
    frame.refresh_from_db()
    assert frame.final_defect_type is None and not frame.final_is_defect


def test_correct_names_another_defect_type(api_client, alice, plant):
    frame = pending(plant)
    response = decide(
        api_client, frame, decision="correct", defect_type="crack", comment="hairline"
    )
    assert response.status_code == 201
    frame.refresh_from_db()
    assert frame.final_defect_type.code == "crack"
    assert Verification.objects.get(inspection=frame).comment == "hairline"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"decision": "correct"}, "defect_type"),
        ({"decision": "correct", "defect_type": "no_such_code"}, "defect_type"),
        ({"decision": "confirm", "defect_type": "crack"}, "defect_type"),
        ({"decision": "approve"}, "decision"),
        ({"decision": "confirm", "time_spent_ms": -5}, "time_spent_ms"),
        ({"decision": "confirm", "comment": "x" * 2001}, "comment"),
        ({"decision": "confirm", "supersedes": 999999}, "supersedes"),
        ({}, "decision"),
    ],
)
def test_a_bad_decision_is_refused_and_changes_nothing(api_client, alice, plant, body, complaint):
    frame = pending(plant)
    response = api_client.post(
        f"/api/v1/inspections/{frame.pk}/verifications/", body, format="json"
    )
    assert response.status_code == 400, response.content
    assert complaint in response.json()["detail"]
    frame.refresh_from_db()
    assert frame.review_status == "pending"
    assert not Verification.objects.exists()


def test_deciding_an_unknown_frame_is_a_404(api_client, alice):
    response = api_client.post(
        "/api/v1/inspections/424242/verifications/", {"decision": "confirm"}, format="json"
    )
    assert response.status_code == 404


def test_a_late_decision_is_refused_with_who_decided(api_client, alice, plant):
    frame = pending(plant)
    assert (
        decide(as_user(factories.inspector(username="bob")), frame, decision="reject").status_code
        == 201
    )
    response = decide(api_client, frame, decision="confirm")
    assert response.status_code == 409
    assert response.json()["code"] == "already_verified"
    assert "already verified by bob" in response.json()["detail"]
    frame.refresh_from_db()
    assert not frame.final_is_defect  # bob's word stands
    assert Verification.objects.filter(inspection=frame).count() == 1


def test_a_change_names_the_decision_it_supersedes_and_adds_a_record(api_client, alice, plant):
    frame = pending(plant)
    first = decide(api_client, frame, decision="confirm").json()
    response = decide(api_client, frame, decision="reject", supersedes=first["id"])
    assert response.status_code == 201
    records = list(Verification.objects.filter(inspection=frame).order_by("id"))
    assert [r.decision for r in records] == ["confirm", "reject"]
    assert records[0].defect_type.code == "missing_cap"  # the first record is untouched
    frame.refresh_from_db()
    assert not frame.final_is_defect


def test_history_lists_every_decision_oldest_first(api_client, alice, plant):
    frame = pending(plant)
    first = decide(api_client, frame, decision="confirm").json()
    decide(api_client, frame, decision="correct", defect_type="crack", supersedes=first["id"])
    viewer = as_user(factories.viewer())
    response = viewer.get(f"/api/v1/inspections/{frame.pk}/verifications/")
    assert response.status_code == 200
    assert [(v["decision"], v["defect_type"]) for v in response.json()] == [
        ("confirm", "missing_cap"),
        ("correct", "crack"),
    ]


def test_a_hostile_comment_is_stored_and_returned_as_plain_text(api_client, alice, plant):
    frame = pending(plant)
    response = decide(api_client, frame, decision="reject", comment=HOSTILE)
    assert response["Content-Type"] == "application/json"
    assert response.json()["comment"] == HOSTILE
    assert Verification.objects.get(inspection=frame).comment == HOSTILE


# --- Permissions ------------------------------------------------------------------


def test_viewers_engineers_and_devices_cannot_decide(api_client, plant):
    frame = pending(plant)
    for user in (factories.viewer(), factories.engineer()):
        response = decide(as_user(user), frame, decision="confirm")
        assert response.status_code == 403
        assert "Inspectors" in response.json()["detail"]
    _, token = factories.station_with_token(line_obj=plant.line)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert decide(api_client, frame, decision="confirm").status_code == 403
    api_client.credentials()
    assert decide(api_client, frame, decision="confirm").status_code in (401, 403)
    assert not Verification.objects.exists()


def test_an_inspector_with_an_api_token_can_decide(api_client, plant):
    frame = pending(plant)
    user = factories.inspector()
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    assert decide(api_client, frame, decision="confirm").status_code == 201


def test_session_posts_need_the_csrf_token(client, plant):
    frame = pending(plant)
    user = factories.inspector()
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    response = strict.post(
        f"/api/v1/inspections/{frame.pk}/verifications/",
        {"decision": "confirm"},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


# --- Claims ---------------------------------------------------------------------------


def test_a_claimed_frame_cannot_be_decided_or_claimed_by_another_inspector(
    api_client, alice, plant
):
    frame = pending(plant)
    assert api_client.post(f"/api/v1/inspections/{frame.pk}/claim/").status_code == 200
    bob = as_user(factories.inspector(username="bob"))
    claim = bob.post(f"/api/v1/inspections/{frame.pk}/claim/")
    assert claim.status_code == 409
    assert "being reviewed by alice" in claim.json()["detail"]
    late = decide(bob, frame, decision="reject")
    assert late.status_code == 409 and late.json()["code"] == "claimed"
    assert decide(api_client, frame, decision="confirm").status_code == 201


def test_a_claim_lapses_after_the_claim_time(api_client, alice, plant, settings):
    frame = pending(plant)
    api_client.post(f"/api/v1/inspections/{frame.pk}/claim/")
    frame.refresh_from_db()
    expected = timezone.now() + dt.timedelta(seconds=settings.LINESIGHT["REVIEW_CLAIM_SECONDS"])
    assert abs((frame.claimed_until - expected).total_seconds()) < 5
    Inspection.objects.filter(pk=frame.pk).update(
        claimed_until=timezone.now() - dt.timedelta(seconds=1)
    )
    bob = as_user(factories.inspector(username="bob"))
    assert bob.post(f"/api/v1/inspections/{frame.pk}/claim/").status_code == 200
    frame.refresh_from_db()
    assert frame.claimed_by.username == "bob"


def test_skipping_releases_only_ones_own_claim(api_client, alice, plant):
    frame = pending(plant)
    api_client.post(f"/api/v1/inspections/{frame.pk}/claim/")
    bob = as_user(factories.inspector(username="bob"))
    assert bob.delete(f"/api/v1/inspections/{frame.pk}/claim/").status_code == 204
    frame.refresh_from_db()
    assert frame.claimed_by == alice
    assert api_client.delete(f"/api/v1/inspections/{frame.pk}/claim/").status_code == 204
    assert bob.post(f"/api/v1/inspections/{frame.pk}/claim/").status_code == 200


def test_claiming_a_frame_decided_meanwhile_says_so(api_client, alice, plant):
    frame = pending(plant)
    decide(as_user(factories.inspector(username="bob")), frame, decision="confirm")
    response = api_client.post(f"/api/v1/inspections/{frame.pk}/claim/")
    assert response.status_code == 409
    assert "already verified by bob" in response.json()["detail"]


def test_a_decision_ends_the_claim(api_client, alice, plant):
    frame = pending(plant)
    api_client.post(f"/api/v1/inspections/{frame.pk}/claim/")
    decide(api_client, frame, decision="confirm")
    frame.refresh_from_db()
    assert frame.claimed_by is None and frame.claimed_until is None


# --- Undo -------------------------------------------------------------------------------


def test_undo_hands_the_frame_back_and_the_next_decision_supersedes(api_client, alice, plant):
    frame = pending(plant)
    first = decide(api_client, frame, decision="confirm").json()
    response = api_client.post(f"/api/v1/verifications/{first['id']}/undo/")
    assert response.status_code == 200
    assert response.json()["inspection"]["id"] == frame.pk
    assert response.json()["supersedes"] == first["id"]
    frame.refresh_from_db()
    assert frame.claimed_by == alice
    assert Verification.objects.filter(inspection=frame).count() == 1  # nothing edited yet
    second = decide(api_client, frame, decision="reject", supersedes=first["id"])
    assert second.status_code == 201
    assert [v.decision for v in Verification.objects.filter(inspection=frame)] == [
        "confirm",
        "reject",
    ]


def test_only_the_inspector_who_decided_can_undo(api_client, alice, plant):
    frame = pending(plant)
    first = decide(api_client, frame, decision="confirm").json()
    bob = as_user(factories.inspector(username="bob"))
    response = bob.post(f"/api/v1/verifications/{first['id']}/undo/")
    assert response.status_code == 400
    assert "Only the inspector" in response.json()["detail"]


def test_undo_after_someone_changed_the_decision_is_refused(api_client, alice, plant):
    frame = pending(plant)
    first = decide(api_client, frame, decision="confirm").json()
    bob = as_user(factories.inspector(username="bob"))
    decide(bob, frame, decision="reject", supersedes=first["id"])
    response = api_client.post(f"/api/v1/verifications/{first['id']}/undo/")
    assert response.status_code == 409
    assert "decided again by bob" in response.json()["detail"]


# --- Queue ----------------------------------------------------------------------------------


def test_queue_is_most_severe_first_then_oldest_first(api_client, alice, plant):
    now = timezone.now()
    ago = lambda minutes: now - dt.timedelta(minutes=minutes)  # noqa: E731
    minor_old = pending(plant, label="crack", captured_at=ago(30))
    critical_new = pending(plant, label="missing_cap", captured_at=ago(1))
    critical_old = pending(plant, label="missing_cap", captured_at=ago(20))
    unsure = scene.frame(
        plant.deployments[0],
        verdict="review",
        label="ok",
        confidence=0.4,
        review_status="pending",
        broadcast=False,
        captured_at=ago(60),
    )
    scene.frame(plant.deployments[0], verdict="pass", broadcast=False)  # not pending
    response = api_client.get("/api/v1/review/queue/")
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [
        critical_old.pk,
        critical_new.pk,
        minor_old.pk,
        unsure.pk,
    ]
    assert response.json()["pending"] == 4


def test_queue_leaves_out_frames_another_inspector_is_looking_at(api_client, alice, plant):
    mine, theirs = pending(plant), pending(plant)
    as_user(factories.inspector(username="bob")).post(f"/api/v1/inspections/{theirs.pk}/claim/")
    api_client.post(f"/api/v1/inspections/{mine.pk}/claim/")
    body = api_client.get("/api/v1/review/queue/").json()
    assert [item["id"] for item in body["results"]] == [mine.pk]
    assert body["pending"] == 2


def test_queue_filters_by_line_and_station(api_client, alice, plant):
    other = scene.build()
    here = pending(plant, station=1)
    pending(plant, station=0)
    pending(other)
    by_line = api_client.get(f"/api/v1/review/queue/?line={plant.line.code}").json()
    assert by_line["pending"] == 2
    by_station = api_client.get(f"/api/v1/review/queue/?station={plant.stations[1].code}").json()
    assert [item["id"] for item in by_station["results"]] == [here.pk]
    assert api_client.get("/api/v1/review/queue/?limit=lots").status_code == 400


# --- Events -------------------------------------------------------------------------------------


@pytest.fixture
def memory_layer(settings):
    """These tests listen from plain sync code, one event loop per call: the in-memory
    layer allows that (the Redis layers are covered by the socket tests)."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def listen(group: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def received(channel: str) -> list[dict]:
    layer = get_channel_layer()
    out = []

    async def drain():
        import asyncio

        while True:
            try:
                out.append(await asyncio.wait_for(layer.receive(channel), 0.2))
            except TimeoutError:
                return

    async_to_sync(drain)()
    return out


def test_decision_and_claims_are_announced_after_commit(
    api_client, alice, plant, django_capture_on_commit_callbacks, memory_layer
):
    frame = pending(plant)
    review = listen(events.REVIEW_GROUP)
    line = listen(events.line_group(plant.line.code))
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(f"/api/v1/inspections/{frame.pk}/claim/")
    with django_capture_on_commit_callbacks(execute=True):
        decide(api_client, frame, decision="reject", comment=HOSTILE)
    review_events = received(review)
    assert [e["type"] for e in review_events] == ["review.claimed", "inspection.verified"]
    assert review_events[0]["claim"]["by"] == "alice"
    verified = review_events[1]
    assert verified["verification"]["comment"] == HOSTILE
    assert verified["inspection"]["review_status"] == "verified"
    assert [e["type"] for e in received(line)] == ["inspection.verified"]


def test_a_refused_decision_announces_nothing(
    api_client, alice, plant, django_capture_on_commit_callbacks, memory_layer
):
    frame = pending(plant)
    decide(as_user(factories.inspector(username="bob")), frame, decision="reject")
    review = listen(events.REVIEW_GROUP)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert decide(api_client, frame, decision="confirm").status_code == 409
    assert callbacks == []
    assert received(review) == []


def test_a_release_is_announced_with_who_let_go(
    api_client, alice, plant, django_capture_on_commit_callbacks, memory_layer
):
    frame = pending(plant)
    api_client.post(f"/api/v1/inspections/{frame.pk}/claim/")
    review = listen(events.REVIEW_GROUP)
    with django_capture_on_commit_callbacks(execute=True):
        api_client.delete(f"/api/v1/inspections/{frame.pk}/claim/")
    [released] = received(review)
    assert released["type"] == "review.released"
    assert released["claim"]["by"] == "alice"  # her own queue knows not to take it back
    assert released["inspection"]["id"] == frame.pk
