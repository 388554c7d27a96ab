"""Datasets over the API: import of class folders and labels.csv as a job, and bad input."""

import hashlib
import io

import pytest
from PIL import Image
from rest_framework.test import APIClient

from models_registry.datasets.models import DatasetImage
from models_registry.datasets.services import image_remove, snapshot_create
from tests import factories
from tests.conftest import stored_files
from tests.hostile_models import tar_add_file, tar_add_link, targz_bytes, zip_bomb, zip_with_symlink
from tests.images import frame_bytes, huge_png
from tests.models_registry.datasets_helpers import (
    as_targz,
    as_zip,
    class_folders,
    gif_bytes,
    import_now,
    picture,
    truncated_jpeg,
    upload,
    zip_with_control_char_folder,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.engineer())}")
    return client


@pytest.fixture
def dataset(api) -> str:
    response = api.post(
        "/api/v1/datasets/", {"name": "bottles", "description": "line 2"}, format="json"
    )
    assert response.status_code == 201, response.content
    return "bottles"


def test_engineer_creates_a_dataset_and_the_name_is_unique(api, dataset):
    body = api.get(f"/api/v1/datasets/{dataset}/").json()
    assert body["name"] == "bottles" and body["description"] == "line 2"
    assert body["image_count"] == 0 and body["label_counts"] == {} and body["last_import"] is None
    again = api.post("/api/v1/datasets/", {"name": "bottles"}, format="json")
    assert again.status_code == 400 and "already exists" in again.json()["detail"]


def test_inspectors_may_not_use_datasets(dataset):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.inspector())}")
    assert client.get(f"/api/v1/datasets/{dataset}/").status_code == 403
    assert client.post("/api/v1/datasets/", {"name": "x"}, format="json").status_code == 403


def test_class_folders_are_imported_with_counts_thumbnails_and_original_bytes(
    api, dataset, _media_root
):
    factories.defect_type(code="crack")
    entries = class_folders({"ok": 3, "crack": 2})
    entries["ok/copy_of_first.png"] = entries["ok/img_0.png"]  # an exact duplicate
    entries["ok/.DS_Store"] = b"junk"
    job = import_now(api, dataset, as_zip(entries))

    assert job["state"] == "done", job["error"]
    assert job["progress"] == 1.0 and job["error"] == ""
    report = job["result"]
    assert report["imported"] == 5 and report["per_label"] == {"crack": 2, "ok": 3}
    assert report["duplicates"] == 1 and report["skipped_count"] == 0
    body = api.get(f"/api/v1/datasets/{dataset}/").json()
    assert body["image_count"] == 5
    assert body["label_counts"] == {"crack": 2, "ok": 3}
    assert body["last_import"]["id"] == job["id"] and body["last_import"]["state"] == "done"
    meanings = {label["name"]: label["meaning"] for label in body["labels"]}
    assert meanings == {"ok": "no defect", "crack": "crack"}

    image = DatasetImage.objects.get(original_name="crack/img_3.png")
    assert image.file.read() == entries["crack/img_3.png"]  # stored as sent, not re-encoded
    assert image.sha256 == hashlib.sha256(entries["crack/img_3.png"]).hexdigest()
    assert (image.width, image.height, image.format, image.mode) == (24, 16, "PNG", "RGB")
    assert image.thumbnail.name.endswith(".thumb.jpg") and image.thumbnail.size > 0
    assert image.split == "unassigned" and image.source == "upload"
    # Only the images and their thumbnails remain; the uploaded archive is gone.
    assert len(stored_files(_media_root)) == 10


def test_labels_csv_import_from_tar_gz_keeps_groups_and_a_second_upload_adds(api, dataset):
    entries = {f"pics/{i}.png": picture(i) for i in range(4)}
    entries["labels.csv"] = (
        b"file,label,group\npics/0.png,good,p1\npics/1.png,good,p1\n"
        b"pics/2.png,dent,p2\npics/3.png,dent,\n"
    )
    job = import_now(api, dataset, as_targz(entries), "set.tar.gz")
    assert job["state"] == "done", job["error"]
    assert job["result"]["layout"] == "labels.csv"
    assert job["result"]["per_label"] == {"dent": 2, "good": 2}
    groups = dict(DatasetImage.objects.values_list("original_name", "group"))
    assert groups == {"pics/0.png": "p1", "pics/1.png": "p1", "pics/2.png": "p2", "pics/3.png": ""}

    second = import_now(api, dataset, as_zip({"dent/x.png": picture(9), "good/y.png": picture(0)}))
    assert second["state"] == "done"
    assert second["result"]["imported"] == 1 and second["result"]["duplicates"] == 1
    assert api.get(f"/api/v1/datasets/{dataset}/").json()["label_counts"] == {"dent": 3, "good": 2}


def test_unfit_images_are_skipped_with_their_reason_and_the_rest_imported(api, dataset):
    entries = class_folders({"ok": 2, "crack": 2})
    entries["crack/huge.png"] = huge_png(20000, 20000)
    entries["crack/cut.jpg"] = truncated_jpeg()
    entries["ok/notes.jpg"] = b"this is a text file, not a photograph\n"
    entries["ok/anim.gif"] = gif_bytes()
    job = import_now(api, dataset, as_zip(entries))

    assert job["state"] == "done", job["error"]
    report = job["result"]
    assert report["imported"] == 4 and report["skipped_count"] == 4
    reasons = {row["file"]: row["reason"] for row in report["skipped"]}
    assert "over the pixel limit of 40,000,000" in reasons["crack/huge.png"]
    assert "truncated or corrupt" in reasons["crack/cut.jpg"]
    assert "not an image" in reasons["ok/notes.jpg"]
    assert "GIF image; only JPEG, PNG, BMP and TIFF" in reasons["ok/anim.gif"]


HOSTILE = {
    "zip slip": (as_zip({"ok/a.png": picture(1), "../crack/b.png": picture(2)}), "'..'"),
    "absolute path": (as_zip({"ok/a.png": picture(1), "/tmp/crack/b.png": picture(2)}), "absolute"),  # noqa: S108
    "zip symlink": (zip_with_symlink("crack", "/etc"), "symbolic link"),
    "zip bomb": (zip_bomb(unpacked_bytes=200 * 1024 * 1024), "archive bomb"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_archives_fail_the_job_and_leave_nothing(api, dataset, _media_root, case):
    data, words = HOSTILE[case]
    job = import_now(api, dataset, data)
    assert job["state"] == "failed" and words in job["error"], job["error"]
    assert DatasetImage.objects.count() == 0
    assert stored_files(_media_root) == []


def test_tar_with_a_link_fails_and_leaves_nothing(api, dataset, _media_root):
    def add(archive):
        tar_add_file(archive, "ok/a.png", picture(1))
        tar_add_link(archive, "crack/b.png", "/etc/passwd", hard=False)

    job = import_now(api, dataset, targz_bytes(add), "set.tar.gz")
    assert job["state"] == "failed" and "link" in job["error"]
    assert stored_files(_media_root) == []


BAD_LABELS = {
    "slash": ("a/b", "path character"),
    "dot dot": ("..", "'..'"),
    "control character": ("cr\x1back", "control"),
    "300 characters": ("x" * 300, "longer than 100"),
}


@pytest.mark.parametrize("case", BAD_LABELS, ids=list(BAD_LABELS))
def test_bad_label_names_in_labels_csv_fail_and_import_nothing(api, dataset, _media_root, case):
    label, words = BAD_LABELS[case]
    csv_text = f"file,label\n0.png,good\n1.png,{label}\n".encode()
    job = import_now(
        api, dataset, as_zip({"0.png": picture(0), "1.png": picture(1), "labels.csv": csv_text})
    )
    assert job["state"] == "failed" and words in job["error"], job["error"]
    assert DatasetImage.objects.count() == 0 and stored_files(_media_root) == []


def test_a_class_folder_named_with_control_characters_fails(api, dataset, _media_root):
    job = import_now(api, dataset, zip_with_control_char_folder())
    assert job["state"] == "failed" and "control" in job["error"]
    assert stored_files(_media_root) == []


BAD_ARCHIVES = {
    "no images": ({"ok/readme.txt": b"hello", "crack/notes.txt": b"x"}, "No image of the archive"),
    "empty": ({}, "no class folders"),
    "single class": (class_folders({"ok": 3}), "single class"),
    "empty class folder": (
        {**class_folders({"ok": 1, "crack": 1}), "dent/": b""},
        "'dent' holds no",
    ),
    "csv names missing files": (
        {"0.png": picture(0), "labels.csv": b"file,label\n0.png,ok\n1.png,crack\n"},
        "does not hold: '1.png'",
    ),
    "csv without header": (
        {"0.png": picture(0), "1.png": picture(1), "labels.csv": b"0.png,ok\n1.png,crack\n"},
        "must begin with the header line",
    ),
}


@pytest.mark.parametrize("case", BAD_ARCHIVES, ids=list(BAD_ARCHIVES))
def test_bad_archives_get_a_clear_error_and_import_nothing(api, dataset, _media_root, case):
    entries, words = BAD_ARCHIVES[case]
    job = import_now(api, dataset, as_zip(entries))
    assert job["state"] == "failed" and words in job["error"], job["error"]
    assert DatasetImage.objects.count() == 0
    assert stored_files(_media_root) == []
    assert api.get(f"/api/v1/datasets/{dataset}/").json()["label_counts"] == {}


def test_an_upload_that_is_not_an_archive_is_refused_before_any_job(api, dataset, _media_root):
    response = upload(api, dataset, picture(0), "photo.png")
    assert response.status_code == 400 and ".zip or .tar.gz" in response.json()["detail"]
    assert stored_files(_media_root) == []


def test_unknown_dataset_is_a_404(api):
    response = upload(api, "nope", as_zip(class_folders({"ok": 1, "crack": 1})))
    assert response.status_code == 404 and "POST /api/v1/datasets/" in response.json()["detail"]


def test_bmp_tiff_and_greyscale_jpeg_are_taken_as_they_are(api, dataset):
    entries = {
        "ok/a.bmp": picture(1, fmt="BMP"),
        "ok/b.tif": picture(2, fmt="TIFF"),
        "crack/c.jpg": frame_bytes((90, 90, 90), size=(30, 20), fmt="JPEG"),
    }
    grey = io.BytesIO()
    Image.new("L", (40, 30), 77).save(grey, "JPEG")
    entries["crack/grey.jpeg"] = grey.getvalue()
    job = import_now(api, dataset, as_zip(entries))
    assert job["state"] == "done", job["error"]
    facts = {
        name: (fmt, mode, (w, h))
        for name, fmt, mode, w, h in DatasetImage.objects.values_list(
            "original_name", "format", "mode", "width", "height"
        )
    }
    assert facts["ok/a.bmp"][0] == "BMP" and facts["ok/b.tif"][0] == "TIFF"
    assert facts["crack/grey.jpeg"] == ("JPEG", "L", (40, 30))


def test_removing_an_image_keeps_it_for_the_snapshots_that_hold_it(
    api, dataset, _media_root, django_capture_on_commit_callbacks
):
    assert import_now(api, dataset, as_zip(class_folders({"ok": 2, "crack": 2})))["state"] == "done"
    first, second = DatasetImage.objects.order_by("id")[:2]
    with django_capture_on_commit_callbacks(execute=True):
        image_remove(image=first)  # in no snapshot: gone, with its files
    assert not DatasetImage.objects.filter(pk=first.pk).exists()
    assert len(stored_files(_media_root)) == 6
    snapshot_create(dataset=second.dataset)
    image_remove(image=second)  # frozen in snapshot 1: hidden from the dataset only
    second.refresh_from_db()
    assert second.removed_at is not None and second.file.read()
    assert api.get(f"/api/v1/datasets/{dataset}/").json()["image_count"] == 2
