"""Retention: each plant's policy removes old images and rows, never a frame under review or
in a dataset snapshot; what went is counted per day; a dry run changes nothing; a removed
image reads "removed by retention" on the API and the dashboard, never a 404 or 500."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from common.jobs import job_enqueue, job_run
from inspection.models import Inspection, RetentionDay, RetentionPolicy, Verification
from inspection.retention import RETENTION, not_sampled, retention_apply
from models_registry.datasets.choices import ImageSource
from models_registry.datasets.services import (
    IncomingImage,
    dataset_add_images,
    dataset_create,
    snapshot_create,
)
from tests import factories
from tests.browser import scene
from tests.conftest import stored_files
from tests.images import RED, frame_bytes

pytestmark = pytest.mark.django_db


def aged_frame(deployment, *, days_ago: int, **fields) -> Inspection:
    """A frame taken and received ``days_ago`` days ago, as the API would have stored it."""
    when = timezone.now() - dt.timedelta(days=days_ago)
    fields.setdefault("image_bytes", 4)
    frame = scene.frame(deployment, broadcast=False, captured_at=when, **fields)
    Inspection.objects.filter(pk=frame.pk).update(received_at=when)
    frame.received_at = when
    return frame


_frame = aged_frame


def _in_snapshot(frame: Inspection) -> None:
    dataset = dataset_create(name=f"kept-{frame.pk}")
    dataset_add_images(
        dataset=dataset,
        images=[
            IncomingImage(
                data=frame_bytes(RED),
                label="ok",
                name=f"inspection-{frame.pk}.jpg",
                source=ImageSource.INSPECTION,
                inspection_id=frame.pk,
            )
        ],
    )
    snapshot_create(dataset=dataset)


@pytest.fixture
def history():
    """Frames of one plant, from 5 to 800 days old, under the default periods (no sample)."""
    built = scene.build()
    deployment = built.deployments[0]
    plant = built.line.plant
    RetentionPolicy.objects.create(plant=plant, pass_sample_percent=0)
    plain = {"review_status": "not_required"}
    # Oldest first: ids follow arrival, as on a line.
    frames = {
        "pending": _frame(deployment, days_ago=800, verdict="fail"),
        "verified": _frame(deployment, days_ago=800, verdict="fail"),
        "in_snapshot": _frame(deployment, days_ago=800, verdict="pass", **plain),
        "ancient_fail": _frame(deployment, days_ago=400, verdict="fail", **plain),
        "old_pass": _frame(deployment, days_ago=40),
        "old_fail": _frame(deployment, days_ago=40, verdict="fail", **plain),
        "fresh_pass": _frame(deployment, days_ago=5),
    }
    decided = factories.inspector(username="ines")
    verification = Verification.objects.create(
        inspection=frames["verified"], inspector=decided, decision="confirm"
    )
    Inspection.objects.filter(pk=frames["verified"].pk).update(
        review_status="verified", verified_at=verification.created_at
    )
    _in_snapshot(frames["in_snapshot"])
    return {"plant": plant, "frames": frames, "user": decided}


def _reloaded(frames: dict) -> dict:
    found = Inspection.objects.in_bulk([f.pk for f in frames.values()])
    return {name: found.get(frame.pk) for name, frame in frames.items()}


def test_a_dry_run_shows_what_would_go_and_changes_nothing(history, _media_root):
    before = stored_files(_media_root)

    report = retention_apply(dry_run=True)

    [plant] = report.plants
    assert (plant.passes_images, plant.kept_images, plant.rows) == (1, 2, 1)
    assert stored_files(_media_root) == before
    assert all(
        f.image and f.image_deleted_at is None for f in _reloaded(history["frames"]).values()
    )
    assert not RetentionDay.objects.exists()


def test_retention_removes_old_images_and_rows_but_never_reviews_or_snapshots(history, _media_root):
    frames = history["frames"]
    names = {name: frame.image.name for name, frame in frames.items()}

    retention_apply()

    after = _reloaded(frames)
    files = set(stored_files(_media_root))
    for kept in ("fresh_pass", "old_fail", "pending", "in_snapshot"):
        assert after[kept].image.name == names[kept] and names[kept] in files, kept
    for removed in ("old_pass", "ancient_fail"):
        assert after[removed].image.name == "" and after[removed].image_deleted_at, removed
        assert names[removed] not in files
    assert after["verified"] is None, "a row past rows_days goes, with its verifications"
    assert names["verified"] not in files
    assert not Verification.objects.filter(inspection_id=frames["verified"].pk).exists()
    day = RetentionDay.objects.get(plant=history["plant"])
    assert (day.images_deleted, day.rows_deleted, day.bytes_freed, day.runs) == (3, 1, 12, 1)

    again = retention_apply()
    assert (again.plants[0].images, again.plants[0].rows) == (0, 0)


def test_a_removed_image_says_so_on_the_api_and_the_dashboard(history):
    retention_apply()
    frame = history["frames"]["old_pass"]
    client = APIClient()
    client.force_authenticate(factories.viewer())

    image = client.get(f"/api/v1/inspections/{frame.pk}/image/")
    detail = client.get(f"/api/v1/inspections/{frame.pk}/")
    picture = client.get(f"/api/v1/inspections/{frame.pk}/image/", HTTP_ACCEPT="image/webp,*/*")

    assert image.status_code == 410
    assert "removed by retention" in image.json()["detail"]
    assert detail.status_code == 200 and detail.json()["image_removed_at"]
    assert picture.status_code == 410 and picture["Content-Type"] == "image/svg+xml"
    assert b"image removed by retention" in picture.content
    page_client = APIClient()
    page_client.force_login(history["user"])
    page = page_client.get(f"/dashboard/inspections/{frame.pk}/")
    assert page.status_code == 200
    assert "image removed by retention" in page.content.decode()


def test_passes_keep_the_same_sampled_share_on_every_run():
    built = scene.build()
    plant = built.line.plant
    RetentionPolicy.objects.create(plant=plant, pass_sample_percent=25)
    ids = [_frame(built.deployments[0], days_ago=40).pk for _ in range(40)]
    outside = set(
        not_sampled(Inspection.objects.filter(pk__in=ids), 25).values_list("pk", flat=True)
    )
    assert 0 < len(outside) < len(ids)

    retention_apply()
    retention_apply()

    kept = set(Inspection.objects.filter(pk__in=ids).exclude(image="").values_list("pk", flat=True))
    assert kept == set(ids) - outside


def test_a_frame_uploaded_late_is_kept_until_it_has_been_on_the_server_as_long():
    built = scene.build()
    RetentionPolicy.objects.create(plant=built.line.plant, pass_sample_percent=0)
    late = _frame(built.deployments[0], days_ago=40)
    Inspection.objects.filter(pk=late.pk).update(received_at=timezone.now())

    retention_apply()

    assert Inspection.objects.get(pk=late.pk).image.name == late.image.name


def test_a_disabled_policy_leaves_the_plant_alone(history):
    RetentionPolicy.objects.filter(plant=history["plant"]).update(enabled=False)

    report = retention_apply()

    assert report.plants[0].skipped == "policy disabled"
    assert Inspection.objects.filter(image_deleted_at__isnull=False).count() == 0


def test_the_retention_job_and_command_apply_the_policy(history, capsys):
    call_command("retention", "--dry-run")
    assert "would remove 1 pass image(s), 2 other image(s), 1 row(s)" in capsys.readouterr().out
    assert Inspection.objects.filter(image_deleted_at__isnull=False).count() == 0

    job = job_enqueue(kind=RETENTION)
    job_run(str(job.pk))
    job.refresh_from_db()

    assert job.state == "done", job.error
    assert job.result["plants"][0]["rows"] == 1
    assert Inspection.objects.filter(image_deleted_at__isnull=False).count() == 2


def _engineer_api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.engineer())}")
    return client


def test_a_plant_without_a_policy_shows_the_defaults_and_an_engineer_sets_one():
    plant = factories.plant(code="PX")
    client = _engineer_api()
    url = f"/api/v1/plants/{plant.code}/retention/"

    shown = client.get(url).json()
    changed = client.put(url, {"pass_images_days": 14, "pass_sample_percent": 2}, format="json")

    assert shown["configured"] is False
    assert (shown["kept_images_days"], shown["pass_images_days"], shown["rows_days"]) == (
        365,
        30,
        730,
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["configured"] is True
    policy = RetentionPolicy.objects.get(plant=plant)
    assert (policy.pass_images_days, policy.pass_sample_percent) == (14, 2.0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pass_images_days": 400}, "pass_images_days"),
        ({"rows_days": 100}, "rows_days"),
        ({"kept_images_days": None}, "rows_days"),
        ({"pass_sample_percent": 101}, "pass_sample_percent"),
        ({"pass_images_days": "soon"}, "pass_images_days"),
    ],
)
def test_a_contradicting_policy_is_refused_and_nothing_changes(body, field):
    plant = factories.plant(code="PY")
    RetentionPolicy.objects.create(plant=plant)

    response = _engineer_api().put(f"/api/v1/plants/{plant.code}/retention/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"] and response.json()["detail"]
    policy = RetentionPolicy.objects.get(plant=plant)
    assert (policy.kept_images_days, policy.pass_images_days, policy.rows_days) == (365, 30, 730)


def test_only_engineers_change_retention():
    plant = factories.plant(code="PZ")
    viewer = APIClient()
    viewer.force_authenticate(factories.viewer())

    response = viewer.put(f"/api/v1/plants/{plant.code}/retention/", {}, format="json")

    assert response.status_code == 403
    assert not RetentionPolicy.objects.exists()
    missing = _engineer_api().get("/api/v1/plants/NOPE/retention/")
    assert missing.status_code == 404


def test_an_engineer_sees_the_dry_run_in_admin_and_a_contradicting_policy_is_refused(history):
    client = APIClient()
    client.force_login(factories.engineer())
    policy = RetentionPolicy.objects.get(plant=history["plant"])

    page = client.post(
        "/admin/inspection/retentionpolicy/",
        {"action": "dry_run", "_selected_action": [policy.pk]},
        follow=True,
    )
    form = client.post(
        f"/admin/inspection/retentionpolicy/{policy.pk}/change/",
        {
            "plant": history["plant"].pk,
            "enabled": "on",
            "kept_images_days": "10",
            "pass_images_days": "30",
            "pass_sample_percent": "1",
            "rows_days": "730",
        },
    )

    assert "would remove 1 pass image(s), 2 other image(s) and 1 row(s)" in page.content.decode()
    assert form.status_code == 200 and "at most as long as the kept images" in form.content.decode()
    assert RetentionPolicy.objects.get(pk=policy.pk).kept_images_days == 365
    assert Inspection.objects.filter(image_deleted_at__isnull=False).count() == 0
