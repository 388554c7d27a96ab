"""Storage in use per plant, its growth and the days left: on the API, the plant overview,
and a warning on the line dashboard when free space runs low."""

import re

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from inspection.models import Inspection, PlantStorage, RetentionPolicy
from inspection.retention import retention_apply
from inspection.storage_usage import storage_measure
from tests import factories
from tests.browser import scene
from tests.images import GREEN, RED, frame_bytes
from tests.inspection.test_api_frames import post_frame
from tests.inspection.test_retention import aged_frame

pytestmark = pytest.mark.django_db


def _as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_frame_is_stored_with_its_size(line_setup, api_client):
    image = frame_bytes(GREEN, size=(320, 240))

    response = post_frame(api_client, token=line_setup["token"], image=image)

    assert Inspection.objects.get(pk=response.json()["id"]).image_bytes == len(image)


def test_the_storage_api_shows_bytes_growth_free_space_and_days_left(line_setup, api_client):
    images = [frame_bytes(RED, size=(200 + i, 100)) for i in range(3)]
    for image in images:
        assert post_frame(api_client, token=line_setup["token"], image=image).status_code == 201

    response = _as(factories.viewer()).get("/api/v1/plants/PL1/storage/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["image_bytes"] == sum(len(i) for i in images)
    assert body["image_files"] == 3 and body["unknown_size_files"] == 0
    assert body["added_per_day_7d"] == round(sum(len(i) for i in images) / 7)
    today = timezone.localdate(timezone=line_setup["plant"].tzinfo).isoformat()
    assert body["daily"] == [[today, sum(len(i) for i in images)]]
    storage = body["storage"]
    assert storage["kind"] == "local" and storage["free_bytes"] > 0
    assert storage["days_left"] == pytest.approx(
        storage["free_bytes"] / storage["net_growth_per_day_7d"], rel=0.01
    )


def test_frames_stored_before_sizes_were_kept_count_at_the_mean_size():
    built = scene.build()
    deployment = built.deployments[0]
    for size in (100, 300):
        scene.frame(deployment, broadcast=False, image_bytes=size)
    scene.frame(deployment, broadcast=False)  # an older frame: size unknown

    measured = storage_measure(built.line.plant)

    assert (measured.image_files, measured.unknown_size_files) == (3, 1)
    assert measured.image_bytes == 600


def test_retention_frees_space_and_the_figures_follow(settings):
    built = scene.build()
    aged_frame(built.deployments[0], days_ago=60, image_bytes=1000)
    scene.frame(built.deployments[0], broadcast=False, image_bytes=10)
    plant = built.line.plant
    assert storage_measure(plant).image_bytes == 1010
    RetentionPolicy.objects.create(plant=plant, pass_sample_percent=0)

    retention_apply(plants=[plant])

    measured = PlantStorage.objects.get(plant=plant)
    assert (measured.image_files, measured.image_bytes) == (1, 10)
    body = _as(factories.viewer()).get(f"/api/v1/plants/{plant.code}/storage/").json()
    assert body["image_bytes"] == 10
    # 10 bytes written this week, 1000 freed: the storage shrinks, no days-left figure.
    assert body["net_growth_per_day_7d"] == round((10 - 1000) / 7)
    assert body["storage"]["days_left"] is None


def test_s3_has_no_free_space_unless_its_capacity_is_set(settings, line_setup, api_client):
    from inspection.storage_usage import storage_space

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": "unused", "region_name": "us-east-1"},
        },
    }
    PlantStorage.objects.create(
        plant=line_setup["plant"], measured_at=timezone.now(), image_bytes=4000, image_files=2
    )
    settings.LINESIGHT = {**settings.LINESIGHT, "STORAGE_CAPACITY_BYTES": 0}
    assert storage_space().free_bytes is None

    settings.LINESIGHT = {**settings.LINESIGHT, "STORAGE_CAPACITY_BYTES": 10_000}
    space = storage_space()
    assert (space.kind, space.free_bytes, space.capacity_bytes) == ("s3", 6000, 10_000)


def test_the_plant_overview_shows_storage_and_the_line_warns_when_space_runs_low(settings):
    built = scene.build()
    scene.frame(built.deployments[0], broadcast=False, image_bytes=2048)
    client = APIClient()
    client.force_login(factories.inspector())
    line_url = f"/dashboard/lines/{built.line.code}/"

    settings.LINESIGHT = {**settings.LINESIGHT, "STORAGE_MIN_FREE_BYTES": 1}
    overview = client.get("/dashboard/").content.decode()
    calm = client.get(line_url).content.decode()
    settings.LINESIGHT = {**settings.LINESIGHT, "STORAGE_MIN_FREE_BYTES": 10**18}
    low = client.get(line_url).content.decode()

    assert f"Storage · {built.line.plant.code}" in overview
    assert "2.0 KB in 1 file" in overview
    assert re.search(r"Measured \d{4}-\d\d-\d\d \d\d:\d\d by the retention job", overview)
    assert "data-storage-warning" not in calm
    assert "Frame storage is nearly full" in low


def test_storage_needs_a_login_and_a_known_plant():
    factories.plant(code="PS")

    anonymous = APIClient().get("/api/v1/plants/PS/storage/")
    unknown = _as(factories.viewer()).get("/api/v1/plants/NOPE/storage/")

    assert anonymous.status_code in (401, 403)
    assert unknown.status_code == 404
