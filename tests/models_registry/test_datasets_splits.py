"""Splits and snapshots: grouped, stratified, seeded splits; immutable numbered snapshots."""

from collections import defaultdict

import pytest
from rest_framework.test import APIClient

from models_registry.datasets.models import DatasetImage, SnapshotImage
from models_registry.datasets.services import image_relabel
from models_registry.datasets.splitting import derive_group, group_keys
from tests import factories
from tests.models_registry.datasets_helpers import as_zip, import_now, picture

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.engineer())}")
    return client


def make_dataset(api, name: str, entries: dict[str, bytes]) -> str:
    assert api.post("/api/v1/datasets/", {"name": name}, format="json").status_code == 201
    job = import_now(api, name, as_zip(entries))
    assert job["state"] == "done", job["error"]
    return name


def shots_of_parts(parts_per_label: dict[str, int], shots: int = 3) -> dict[str, bytes]:
    """Shots of each part, named as cameras do: part7_1.png, part7-2.png, part7 (3).png."""
    entries, index = {}, 0
    suffixes = ["_{}", "-{}", " ({})"]
    for label, parts in parts_per_label.items():
        for part in range(parts):
            for shot in range(1, shots + 1):
                suffix = suffixes[(shot - 1) % 3].format(shot)
                entries[f"{label}/{label}part{part}{suffix}.png"] = picture(index)
                index += 1
    return entries


def splits_by_group() -> dict[str, set[str]]:
    seen = defaultdict(set)
    for name, split in DatasetImage.objects.values_list("original_name", "split"):
        seen[derive_group(name)].add(split)
    return seen


def test_group_is_derived_from_the_file_name():
    assert derive_group("ok/part17_2.jpg") == "part17"
    assert derive_group("part17-3.PNG") == "part17"
    assert derive_group("part17 (4).jpg") == "part17"
    assert derive_group("IMG_0001.jpg") == "img"
    assert derive_group("scratch.png") == "scratch"


def test_a_naming_scheme_is_not_taken_for_one_part():
    # cast_def_0_1..30 would all be "cast_def_0": far too many shots for one part.
    rows = [(i, f"def/cast_def_0_{i}.jpeg", "") for i in range(30)]
    rows += [(100, "ok/part9_1.png", ""), (101, "ok/part9_2.png", ""), (102, "ok/x.png", "given")]
    keys = group_keys(rows, "auto")
    assert len({keys[i] for i in range(30)}) == 30
    assert keys[100] == keys[101] == "name:part9"
    assert keys[102] == "given:given"


def test_grouped_split_keeps_each_part_on_one_side_and_is_reproducible(api):
    name = make_dataset(api, "parts", shots_of_parts({"ok": 20, "crack": 10}))
    response = api.post(f"/api/v1/datasets/{name}/splits/", {"seed": 7}, format="json")
    assert response.status_code == 201, response.content
    split = response.json()
    assert split["number"] == 1 and split["parameters"]["seed"] == 7
    assert split["parameters"]["shares"] == {"train": 0.7, "validation": 0.15, "test": 0.15}

    assert all(len(splits) == 1 for splits in splits_by_group().values())
    counts = split["counts"]
    # Stratified: each label is in every split, near its share (parts of 3 shots).
    assert counts["train"] == {"crack": 21, "ok": 42}
    assert counts["validation"]["ok"] in (9, 6) and counts["test"]["crack"] in (3, 6)
    first = dict(DatasetImage.objects.values_list("sha256", "split"))

    api.post(f"/api/v1/datasets/{name}/splits/", {"seed": 8}, format="json")
    assert dict(DatasetImage.objects.values_list("sha256", "split")) != first
    again = api.post(f"/api/v1/datasets/{name}/splits/", {"seed": 7}, format="json").json()
    assert dict(DatasetImage.objects.values_list("sha256", "split")) == first
    assert again["number"] == 3  # every re-split is recorded


def test_without_grouping_shots_of_one_part_may_land_on_both_sides(api):
    name = make_dataset(api, "loose", shots_of_parts({"ok": 20, "crack": 10}))
    api.post(f"/api/v1/datasets/{name}/splits/", {"seed": 7, "grouping": "none"}, format="json")
    assert any(len(splits) > 1 for splits in splits_by_group().values())


def test_shares_that_do_not_add_up_are_refused(api):
    name = make_dataset(api, "shares", shots_of_parts({"ok": 2, "crack": 2}))
    response = api.post(
        f"/api/v1/datasets/{name}/splits/",
        {"shares": {"train": 0.9, "validation": 0.2, "test": 0.1}},
        format="json",
    )
    assert response.status_code == 400 and "add up to 1" in response.json()["detail"]


def test_snapshot_freezes_images_labels_and_splits(api):
    name = make_dataset(api, "frozen", shots_of_parts({"ok": 10, "crack": 5}))
    response = api.post(f"/api/v1/datasets/{name}/snapshots/", {}, format="json")
    assert response.status_code == 201, response.content
    first = response.json()
    assert first["number"] == 1 and first["image_count"] == 45
    assert first["split_number"] == 1  # never split before: split with the defaults, recorded
    assert sum(first["counts"]["test"].values()) > 0
    frozen = set(SnapshotImage.objects.values_list("image__sha256", "label__name", "split"))

    # Relabel an image and re-split: the snapshot does not move.
    image_relabel(image=DatasetImage.objects.filter(label__name="ok").first(), label="crack")
    api.post(f"/api/v1/datasets/{name}/splits/", {"seed": 99}, format="json")
    assert set(SnapshotImage.objects.values_list("image__sha256", "label__name", "split")) == frozen

    second = api.post(f"/api/v1/datasets/{name}/snapshots/", {}, format="json").json()
    assert second["number"] == 2 and second["split_number"] == 2
    listed = api.get(f"/api/v1/datasets/{name}/snapshots/").json()
    assert [s["number"] for s in listed] == [1, 2]
    assert api.get(f"/api/v1/datasets/{name}/snapshots/1/").json()["counts"] == first["counts"]
    assert api.get(f"/api/v1/datasets/{name}/").json()["snapshots"] == [1, 2]


def test_images_added_after_a_split_join_it_without_moving_the_others(api):
    name = make_dataset(api, "grows", shots_of_parts({"ok": 10, "crack": 5}))
    api.post(f"/api/v1/datasets/{name}/splits/", {"seed": 3}, format="json")
    placed = dict(DatasetImage.objects.values_list("sha256", "split"))
    more = {f"ok/new{i}.png": picture(1000 + i) for i in range(6)}
    assert import_now(api, name, as_zip(more))["state"] == "done"

    snapshot = api.post(f"/api/v1/datasets/{name}/snapshots/", {}, format="json").json()
    assert snapshot["image_count"] == 51
    now = dict(DatasetImage.objects.values_list("sha256", "split"))
    assert all(now[sha] == split for sha, split in placed.items())
    assert "unassigned" not in now.values()
    assert snapshot["split_parameters"]["seed"] == 3


def test_snapshot_with_split_settings_resplits_first(api):
    name = make_dataset(api, "settings", shots_of_parts({"ok": 10, "crack": 5}))
    body = {"split": {"shares": {"train": 0.5, "validation": 0.0, "test": 0.5}, "seed": 1}}
    snapshot = api.post(f"/api/v1/datasets/{name}/snapshots/", body, format="json").json()
    assert "validation" not in snapshot["counts"]
    assert snapshot["split_parameters"]["shares"]["test"] == 0.5


def test_snapshot_of_an_empty_dataset_is_refused(api):
    assert api.post("/api/v1/datasets/", {"name": "empty"}, format="json").status_code == 201
    response = api.post("/api/v1/datasets/empty/snapshots/", {}, format="json")
    assert response.status_code == 400 and "no images" in response.json()["detail"]
