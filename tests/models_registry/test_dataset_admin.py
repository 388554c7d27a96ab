"""Datasets in Django admin, as a quality engineer clicks through them; the snapshot export."""

import csv
import io
import re
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from common.jobs import job_run
from common.models import Job
from models_registry.datasets.models import Dataset, DatasetImage, DatasetLabel, SnapshotImage
from models_registry.datasets.services import dataset_create, dataset_import_start
from tests import factories
from tests.conftest import stored_files
from tests.models_registry.datasets_helpers import as_zip, class_folders, picture

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/models_registry/dataset/"


def page(dataset: Dataset, view: str = "change") -> str:
    return f"{LIST_URL}{dataset.pk}/{view}/"


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


@pytest.fixture
def browser(client, engineer):
    client.force_login(engineer)
    return client


def imported(entries: dict[str, bytes], *, name: str = "bottles", user=None) -> Dataset:
    """A dataset with the archive imported by the real import job."""
    dataset = Dataset.objects.filter(name=name).first() or dataset_create(name=name)
    job = dataset_import_start(
        dataset=dataset,
        archive=SimpleUploadedFile("photos.zip", as_zip(entries)),
        requested_by=user,
    )
    assert job_run(str(job.pk)) == "done", Job.objects.get(pk=job.pk).error
    return dataset


def test_the_list_shows_each_dataset_with_its_image_count_and_labels(browser):
    imported(class_folders({"ok": 3, "crack": 2}))
    dataset_create(name="empty-one")

    response = browser.get(LIST_URL)

    assert response.status_code == 200
    rows = {row.name: row for row in response.context["cl"].result_list}
    assert rows["bottles"].n_images == 5 and rows["empty-one"].n_images == 0
    text = response.content.decode()
    assert "crack, ok" in text


def test_an_engineer_adds_a_dataset_in_admin(browser):
    response = browser.post(f"{LIST_URL}add/", {"name": "castings", "description": "line 3"})

    dataset = Dataset.objects.get(name="castings")
    assert response.status_code == 302 and response["Location"] == page(dataset)
    assert dataset.description == "line 3"
    again = browser.post(f"{LIST_URL}add/", {"name": "castings"})
    assert again.status_code == 200 and "already exists" in again.content.decode()


@pytest.mark.parametrize("staff", [False, True])
def test_inspectors_are_refused_every_dataset_page(client, staff):
    dataset = imported(class_folders({"ok": 2, "crack": 2}))
    image = DatasetImage.objects.filter(dataset=dataset).first()
    inspector = factories.inspector(is_staff=staff)
    client.force_login(inspector)
    urls = [
        LIST_URL,
        page(dataset),
        page(dataset, "upload"),
        page(dataset, "images"),
        page(dataset, f"images/{image.pk}"),
        page(dataset, f"images/{image.pk}/file"),
        page(dataset, f"images/{image.pk}/thumbnail"),
        page(dataset, "split"),
        page(dataset, "snapshot"),
    ]
    for url in urls:
        response = client.get(url)
        if staff:  # in admin, but without the registry's permissions
            assert response.status_code == 403, url
        else:
            assert response.status_code == 302, url
            assert response["Location"].startswith("/admin/login/"), url


def test_upload_in_admin_runs_an_import_and_its_page_ends_with_the_report(browser, engineer):
    dataset = dataset_create(name="bottles")
    entries = class_folders({"ok": 3, "crack": 2})
    entries["crack/notes.jpg"] = b"this is text, not a photograph"
    upload = SimpleUploadedFile("photos.zip", as_zip(entries))

    response = browser.post(page(dataset, "upload"), {"archive": upload})

    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == page(dataset, f"jobs/{job.pk}")
    assert job.requested_by == engineer and job.kind == "dataset_import"
    waiting = browser.get(response["Location"])
    assert waiting.status_code == 200
    text = waiting.content.decode()
    assert "registry/job_progress.js" in text and f'data-job-url="/api/v1/jobs/{job.pk}/"' in text
    # What the page's script polls answers this engineer.
    assert browser.get(f"/api/v1/jobs/{job.pk}/").json()["state"] == "queued"

    job_run(str(job.pk))
    report = browser.get(response["Location"])

    text = report.content.decode()
    assert "job_progress.js" not in text  # finished: nothing left to follow
    assert report.context["per_label"] == [("crack", 2), ("ok", 3)]
    assert "crack/notes.jpg" in text and "not an image" in text
    assert DatasetImage.objects.filter(dataset=dataset).count() == 5


def test_a_refused_upload_shows_on_the_form_and_starts_nothing(browser):
    dataset = dataset_create(name="bottles")

    response = browser.post(
        page(dataset, "upload"), {"archive": SimpleUploadedFile("photos.rar", b"Rar!")}
    )

    assert response.status_code == 200 and ".zip or .tar.gz" in response.content.decode()
    assert not Job.objects.exists()


def test_the_dataset_page_counts_images_per_class_and_split(browser):
    dataset = imported(class_folders({"ok": 6, "crack": 4}))
    two_ok = DatasetImage.objects.filter(label__name="ok").values_list("pk", flat=True)[:2]
    DatasetImage.objects.filter(pk__in=list(two_ok)).update(split="test")

    response = browser.get(page(dataset))

    assert response.status_code == 200
    rows = {row["label"].name: row for row in response.context["counts"]}
    assert [cell["n"] for cell in rows["ok"]["cells"]] == [0, 0, 2, 4]  # train, val, test, none
    assert rows["crack"]["total"] == 4
    text = response.content.decode()
    for view in ("upload", "images", "split", "snapshot"):
        assert page(dataset, view) in text


def test_a_label_is_mapped_to_a_defect_type_on_the_dataset_page(browser):
    factories.defect_type(code="crack")
    dataset = imported(class_folders({"good": 2, "fissure": 2}))
    fissure = DatasetLabel.objects.get(dataset=dataset, name="fissure")
    good = DatasetLabel.objects.get(dataset=dataset, name="good")
    assert not fissure.is_mapped and good.no_defect
    form = browser.get(page(dataset)).context["inline_admin_formsets"][0].formset
    data = {
        "description": "",
        f"{form.prefix}-TOTAL_FORMS": "2",
        f"{form.prefix}-INITIAL_FORMS": "2",
        f"{form.prefix}-MIN_NUM_FORMS": "0",
        f"{form.prefix}-MAX_NUM_FORMS": "1000",
        f"{form.prefix}-0-id": str(fissure.pk),
        f"{form.prefix}-0-dataset": str(dataset.pk),
        f"{form.prefix}-0-meaning": "crack",
        f"{form.prefix}-1-id": str(good.pk),
        f"{form.prefix}-1-dataset": str(dataset.pk),
        f"{form.prefix}-1-meaning": "__no_defect__",
    }

    response = browser.post(page(dataset), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    fissure.refresh_from_db()
    assert fissure.meaning == "crack"
    # A mapped label cannot go back to unmapped (the versions' rule).
    data[f"{form.prefix}-0-meaning"] = ""
    refused = browser.post(page(dataset), data)
    assert refused.status_code == 200 and "Choose a defect type" in refused.content.decode()


def test_the_thumbnail_grid_is_paged_per_class_and_split_and_images_come_through_a_view(
    browser, _media_root
):
    dataset = imported(class_folders({"ok": 50, "crack": 3}))
    some_crack = list(DatasetImage.objects.filter(label__name="crack").order_by("id"))
    DatasetImage.objects.filter(pk=some_crack[0].pk).update(split="test")

    first = browser.get(page(dataset, "images"), {"label": "ok"})
    second = browser.get(page(dataset, "images"), {"label": "ok", "page": 2})
    tested = browser.get(page(dataset, "images"), {"label": "crack", "split": "test"})

    assert len(first.context["page"].object_list) == 48
    assert len(second.context["page"].object_list) == 2
    assert [image.pk for image in tested.context["page"]] == [some_crack[0].pk]
    text = first.content.decode()
    assert "/media/" not in text  # never a public media URL
    thumbnails = re.findall(r'<img src="([^"]+/thumbnail/)"', text)
    assert len(thumbnails) == 48
    image = first.context["page"].object_list[0]
    thumbnail = browser.get(thumbnails[0])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    assert thumbnail.content == image.thumbnail.open("rb").read()
    full = browser.get(page(dataset, f"images/{image.pk}/file"))
    assert full["Content-Type"] == "image/png"
    assert full.content == picture(0)  # the bytes as uploaded
    detail = browser.get(page(dataset, f"images/{image.pk}"))
    assert detail.status_code == 200 and page(dataset, f"images/{image.pk}/file") in (
        detail.content.decode()
    )


def test_an_image_is_relabelled_and_removed_from_admin(browser):
    dataset = imported(class_folders({"ok": 3, "crack": 3}))
    image = DatasetImage.objects.filter(label__name="ok").first()

    relabelled = browser.post(page(dataset, f"images/{image.pk}"), {"label": "scratch"})

    assert relabelled.status_code == 302
    image.refresh_from_db()
    assert image.label.name == "scratch"
    assert "scratch" in {row["label"].name for row in browser.get(page(dataset)).context["counts"]}
    bad = browser.post(page(dataset, f"images/{image.pk}"), {"label": "a..b"})
    assert bad.status_code == 200 and "holds '..'" in bad.context["form"].errors["label"][0]
    assert "holds &#x27;..&#x27;" in bad.content.decode()  # shown on the page

    asked = browser.get(page(dataset, f"images/{image.pk}/remove"))
    assert asked.status_code == 200 and DatasetImage.objects.filter(pk=image.pk).exists()
    removed = browser.post(page(dataset, f"images/{image.pk}/remove"))
    assert removed.status_code == 302
    assert not DatasetImage.objects.filter(pk=image.pk).exists()
    assert browser.get(page(dataset, f"images/{image.pk}")).status_code == 404


def test_split_and_snapshot_from_admin(browser, engineer):
    dataset = imported(class_folders({"ok": 20, "crack": 20}))

    split = browser.post(
        page(dataset, "split"),
        {"train": 0.5, "validation": 0.25, "test": 0.25, "seed": 7, "grouping": "none"},
    )

    assert split.status_code == 302 and split["Location"] == page(dataset)
    made = dataset.splits.get()
    assert made.parameters == {
        "shares": {"train": 0.5, "validation": 0.25, "test": 0.25},
        "seed": 7,
        "grouping": "none",
    }
    assert sum(made.counts["test"].values()) == 10
    refused = browser.post(
        page(dataset, "split"),
        {"train": 0.9, "validation": 0.25, "test": 0.25, "seed": 7, "grouping": "none"},
    )
    assert refused.status_code == 200 and "add up to 1" in refused.content.decode()

    snap = browser.post(page(dataset, "snapshot"), {"note": "baseline"})

    snapshot = dataset.snapshots.get()
    assert snap.status_code == 302
    assert snapshot.number == 1 and snapshot.image_count == 40 and snapshot.note == "baseline"
    assert snapshot.created_by == engineer and snapshot.split == made
    listed = browser.get(page(dataset))
    assert list(listed.context["snapshots"]) == [snapshot]
    assert "Export .zip" in listed.content.decode()


def read_zip(data: bytes) -> tuple[dict[str, bytes], list[dict]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    rows = list(csv.DictReader(io.StringIO(files.pop("labels.csv").decode())))
    return files, rows


def test_a_snapshot_exports_as_a_zip_of_class_folders_with_labels_csv_and_exact_bytes(
    browser, _media_root
):
    entries = {
        "ok/part1_1.png": picture(1),
        "ok/part1_2.png": picture(2),
        "ok/part2_1.png": picture(3),
        "crack/part9_1.png": picture(4),
        "crack/part9_2.png": picture(5),
    }
    dataset = imported(entries)
    browser.post(page(dataset, "snapshot"), {"note": ""})
    snapshot = dataset.snapshots.get()
    # Relabelled after the snapshot: the export holds the snapshot's label, not today's.
    later = DatasetImage.objects.get(original_name="ok/part2_1.png")
    browser.post(page(dataset, f"images/{later.pk}"), {"label": "crack"})

    queued = browser.post(page(dataset, f"snapshots/{snapshot.number}/export"))

    job = Job.objects.get(kind="dataset_export")
    assert queued["Location"] == page(dataset, f"jobs/{job.pk}")
    assert job.queue == "exports"
    assert job_run(str(job.pk)) == "done", Job.objects.get(pk=job.pk).error
    done = browser.get(queued["Location"])
    download_url = page(dataset, f"exports/{job.pk}/download")
    assert download_url in done.content.decode()
    download = browser.get(download_url)
    assert download.status_code == 200
    assert "bottles-snapshot-1.zip" in download["Content-Disposition"]
    files, rows = read_zip(b"".join(download.streaming_content))

    assert files == {name: data for name, data in entries.items()}  # class folders, same bytes
    by_file = {row["file"]: row for row in rows}
    assert set(by_file) == set(entries)
    assert by_file["ok/part2_1.png"]["label"] == "ok"
    frozen = dict(SnapshotImage.objects.values_list("image__original_name", "split"))
    assert {name: row["split"] for name, row in by_file.items()} == frozen
    assert by_file["crack/part9_1.png"]["group"] == by_file["crack/part9_2.png"]["group"] == "part9"


def test_a_snapshot_exports_over_the_api_and_downloads_when_done(_media_root):
    engineer = factories.engineer()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(engineer)}")
    entries = class_folders({"ok": 2, "crack": 2})
    imported(entries)
    assert api.post("/api/v1/datasets/bottles/snapshots/", {}, format="json").status_code == 201

    response = api.post("/api/v1/datasets/bottles/snapshots/1/export/")

    assert response.status_code == 202, response.content
    job = response.json()
    assert job["kind"] == "dataset_export" and job["state"] == "queued"
    url = f"/api/v1/datasets/bottles/snapshots/1/export/{job['id']}/"
    early = api.get(url)
    assert early.status_code == 409 and early.json()["job"]["state"] == "queued"
    job_run(job["id"])
    finished = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert finished["state"] == "done" and finished["result"]["download"] == url
    files, rows = read_zip(b"".join(api.get(url).streaming_content))
    assert files == entries and len(rows) == 4
    assert api.post("/api/v1/datasets/bottles/snapshots/9/export/").status_code == 404
    inspector = APIClient()
    inspector.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(factories.inspector())}")
    assert inspector.post("/api/v1/datasets/bottles/snapshots/1/export/").status_code == 403
    assert inspector.get(url).status_code == 403
    assert any(name.endswith(".zip") for name in stored_files(_media_root))


def test_a_job_page_shows_only_jobs_of_its_own_dataset(browser):
    bottles = imported(class_folders({"ok": 2, "crack": 2}))
    other = dataset_create(name="other")
    job = Job.objects.get(kind="dataset_import")

    assert browser.get(page(bottles, f"jobs/{job.pk}")).status_code == 200
    assert browser.get(page(other, f"jobs/{job.pk}")).status_code == 404
