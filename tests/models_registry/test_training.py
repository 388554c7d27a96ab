"""Training versions from dataset snapshots: over the API, as a job, in a limited process.

Tiny generated greyscale photographs (32x32: light parts, and parts with a
dark scratch), imported through the dataset API; a real training of one or
two epochs in the real training process; the real upload and validation.
"""

import io
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from common.jobs import job_run
from common.models import Job
from common.preprocessing import Preprocessing
from masterdata.models import DefectType
from models_registry.datasets.models import DatasetImage, DatasetLabel, DatasetSnapshot
from models_registry.datasets.services import image_remove
from models_registry.models import MLModel, ModelVersion
from models_registry.training.models import TrainingRun
from tests import factories
from tests.conftest import committed_db, stored_files
from tests.models_registry.datasets_helpers import as_zip, import_now
from tests.models_registry.test_api import client_for

FAST = {"epochs": 2, "batch_size": 8, "width": 8}


def part_photo(
    index: int, *, scratched: bool, size: int = 32, mode: str = "L", width: int = 0
) -> bytes:
    """A light part with grain; a scratched one has a dark diagonal line. ``mode`` "RGB"
    stores the same grey pixels as colour, "tinted" makes them really coloured; ``width``
    makes it wider than high."""
    rng = np.random.default_rng(index)
    pixels = rng.integers(170, 230, (size, width or size)).astype(np.uint8)
    if scratched:
        for step in range(size - 4):
            pixels[2 + step, (index + step) % size] = 20
    image = Image.fromarray(pixels, "L")
    if mode != "L":
        image = image.convert("RGB")
    if mode == "tinted":
        image = Image.merge(
            "RGB",
            (image.getchannel(0), image.getchannel(1).point(lambda v: v // 2), image.getchannel(2)),
        )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def photos(counts: dict[str, int], mode: str = "L", width: int = 0) -> dict[str, bytes]:
    entries, index = {}, 0
    for label, count in counts.items():
        for _ in range(count):
            scratched = label != "good"
            entries[f"{label}/{label}_{index}.png"] = part_photo(
                index, scratched=scratched, mode=mode, width=width
            )
            index += 1
    return entries


def snapshot_from(
    api,
    name: str,
    counts: dict[str, int],
    shares=None,
    *,
    remove: str = "",
    mode: str = "L",
    width: int = 0,
) -> DatasetSnapshot:
    """Import the photos over the API, map the labels, split and freeze them as a snapshot
    (without the images of label ``remove``, removed as an engineer does in admin)."""
    assert api.post("/api/v1/datasets/", {"name": name}, format="json").status_code == 201
    job = import_now(api, name, as_zip(photos(counts, mode, width)))
    assert job["state"] == "done", job["error"]
    for image in DatasetImage.objects.filter(dataset__name=name, label__name=remove):
        image_remove(image=image)
    defect, _ = DefectType.objects.get_or_create(code="surface_scratch", defaults={"name": "S"})
    DatasetLabel.objects.filter(dataset__name=name, name="good").update(no_defect=True)
    DatasetLabel.objects.filter(dataset__name=name, name="scratch").update(defect_type=defect)
    split = {"seed": 3, "grouping": "none"}
    if shares:
        split["shares"] = shares
    response = api.post(f"/api/v1/datasets/{name}/snapshots/", {"split": split}, format="json")
    assert response.status_code == 201, response.content
    return DatasetSnapshot.objects.get(dataset__name=name, number=response.json()["number"])


def start(api, snapshot, *, model="scratches", settings=None, recipe=None):
    body = {"dataset": snapshot.dataset.name, "snapshot": snapshot.number, "model": model}
    body["settings"] = FAST if settings is None else settings
    if recipe:
        body["recipe"] = recipe
    return api.post("/api/v1/trainings/", body, format="json")


def training_dirs(job_id: str) -> set[str]:
    """The training's own work folders (named after its job) left in the temporary folder."""
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"linesight-training-{job_id}-*")}


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


@pytest.fixture
def api(engineer):
    return client_for(engineer)


@pytest.mark.django_db
def test_a_training_registers_a_ready_version_with_provenance_and_the_label_mapping(api, engineer):
    snapshot = snapshot_from(api, "parts", {"good": 16, "scratch": 16})
    response = start(api, snapshot)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "queued" and body["version"] is None
    chosen = body["settings_chosen"]
    # Chosen from the data: greyscale photographs of 32 px; the engineer's overrides kept.
    assert chosen["color_mode"] == "grayscale" and chosen["input_size"] == 32
    assert chosen["epochs"] == 2 and chosen["overridden"] == ["batch_size", "epochs", "width"]
    assert chosen["class_weights"] == "none" and chosen["seed"] == 1234
    assert "image modes: L" in chosen["why"]["color_mode"]

    assert job_run(body["job"]["id"]) == "done"  # what the training worker does with the job
    run = api.get(f"/api/v1/trainings/{body['id']}/").json()
    assert run["state"] == "done", run["error"]
    assert run["progress"] == 1.0
    assert [epoch["epoch"] for epoch in run["history"]] == [1, 2]
    assert {"loss", "val_loss", "val_accuracy", "val_macro_f1"} <= set(run["history"][0])
    assert run["training_seconds"] > 0 and run["peak_rss_mb"] > 100
    assert run["version"] == {"model": "scratches", "version": 1}
    assert training_dirs(body["job"]["id"]) == set()  # the run's folder is gone

    version = ModelVersion.objects.get(model__name="scratches", number=1)
    assert version.status == "ready" and version.deployments.count() == 0
    # Validated by the validation job, like any upload: the version page shows its steps.
    assert Job.objects.filter(kind="validation", target_id=str(version.pk), state="done").exists()
    assert version.labels == ["good", "scratch"] and version.uploaded_by == engineer
    mapping = {
        m.label: (m.defect_type.code if m.defect_type else m.no_defect)
        for m in version.mappings.select_related("defect_type")
    }
    assert mapping == {"good": True, "scratch": "surface_scratch"}
    # Serving declares exactly the preprocessing training fed through common.preprocessing.
    assert Preprocessing.for_version(version) == Preprocessing(
        height=32,
        width=32,
        channels=1,
        dtype="uint8",
        value_scale="0_255",
        color_mode="grayscale",
        interpolation="bilinear",
    )
    provenance = version.training_run
    assert provenance.snapshot == snapshot and provenance.recipe == "default"
    assert provenance.settings_chosen == chosen and len(provenance.history) == 2
    assert "training run" in version.notes
    # Its evaluation on the snapshot's test split is queued as a job of its own.
    assert provenance.evaluation is not None
    assert provenance.evaluation.split == "test" and provenance.evaluation.version == version
    assert run["evaluation"].endswith(f"/api/v1/evaluations/{provenance.evaluation.pk}/")


@pytest.mark.django_db
def test_colour_mode_is_chosen_from_the_pixels_not_only_the_file_mode(api):
    grey_as_rgb = start(api, snapshot_from(api, "greyrgb", {"good": 8, "scratch": 8}, mode="RGB"))
    chosen = grey_as_rgb.json()["settings_chosen"]
    assert chosen["color_mode"] == "grayscale"
    assert "colour files hold grey pixels only" in chosen["why"]["color_mode"]
    tinted = start(api, snapshot_from(api, "tinted", {"good": 8, "scratch": 8}, mode="tinted"))
    assert tinted.json()["settings_chosen"]["color_mode"] == "rgb"


@pytest.mark.django_db
def test_imbalanced_labels_are_drawn_towards_the_rare_defect_and_overrides_win(api):
    snapshot = snapshot_from(api, "skewed", {"good": 30, "scratch": 8})
    chosen = start(api, snapshot).json()["settings_chosen"]
    assert chosen["sampling"] == "sqrt" and chosen["class_weights"] == "none"
    assert "x: each label drawn in proportion" in chosen["why"]["sampling"]
    assert chosen["class_weight_values"] == {}
    # A handful of validation images per label: an epoch is judged over the last three.
    assert (
        chosen["smoothing_epochs"] == 3
        and "one image moves its F1" in (chosen["why"]["smoothing_epochs"])
    )
    chosen = start(
        api, snapshot, settings={"sampling": "shuffle", "class_weights": "sqrt", "flip": "none"}
    ).json()["settings_chosen"]
    assert chosen["sampling"] == "shuffle" and chosen["class_weights"] == "sqrt"
    weights = chosen["class_weight_values"]
    assert weights["scratch"] > 1 > weights["good"]  # the rare defect counts more
    assert chosen["flip"] == "none" and chosen["why"]["flip"] == "set by the engineer"


def test_sqrt_sampling_shows_a_rare_label_in_proportion_to_the_root_of_its_count():
    import tensorflow as tf

    from models_registry.training.worker import sampled_indices

    truth = np.array([0] * 90 + [1] * 10)
    drawn = [
        int(i)
        for _ in range(20)
        for i in sampled_indices(tf, truth, {"seed": 1, "sampling": "sqrt"}).as_numpy_iterator()
    ]
    assert len(drawn) == 20 * 100  # an epoch is as long as the train split
    rare = float(np.mean(truth[drawn] == 1))
    assert 0.2 < rare < 0.3  # sqrt(10) / (sqrt(90) + sqrt(10)) = 0.25, not 0.10
    shuffled = sampled_indices(tf, truth, {"seed": 1, "sampling": "shuffle"})
    assert sorted(int(i) for i in shuffled.as_numpy_iterator()) == list(range(100))


@pytest.mark.django_db
def test_augmentation_follows_the_photographs_shape_and_brightness(api):
    square = start(api, snapshot_from(api, "square", {"good": 8, "scratch": 8}))
    chosen = square.json()["settings_chosen"]
    assert chosen["rotation"] > 0 and "every image is square" in chosen["why"]["rotation"]
    # The parts are light (about 200 of 255): ±10 % of that.
    assert 0.07 < chosen["brightness"] < 0.09 and "mean level (19" in chosen["why"]["brightness"]
    wide = start(api, snapshot_from(api, "wide", {"good": 8, "scratch": 8}, width=48))
    chosen = wide.json()["settings_chosen"]
    assert chosen["rotation"] == 0 and "not all square" in chosen["why"]["rotation"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "epochs must be from 1"),
        ({"input_size": 5}, "input_size must be from 16"),
        ({"input_size": 5000}, "input_size must be from 16 to 1024"),
        ({"learning_rate": -0.01}, "learning_rate must be above 0"),
        ({"learning_rate": 0}, "learning_rate must be above 0"),
        ({"flip": "sideways"}, "flip must be one of"),
        ({"epochs": 2.5}, "whole number"),
        ({"epochs": True}, "must be a number"),
        ({"colour": "rgb"}, "Unknown setting(s): colour"),
    ],
)
def test_settings_out_of_range_are_refused_before_any_job(api, overrides, message):
    snapshot = snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    response = start(api, snapshot, settings=overrides)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not TrainingRun.objects.exists() and not Job.objects.filter(kind="training").exists()


@pytest.mark.django_db
def test_snapshots_a_model_cannot_learn_from_are_refused_before_any_job(api):
    one_label = snapshot_from(api, "one", {"good": 12, "scratch": 3}, remove="scratch")
    response = start(api, one_label)
    assert response.status_code == 400 and "has one label (good)" in response.json()["detail"]

    no_validation = snapshot_from(
        api, "noval", {"good": 10, "scratch": 10}, {"train": 0.9, "validation": 0.0, "test": 0.1}
    )
    response = start(api, no_validation)
    assert response.status_code == 400 and "no validation images" in response.json()["detail"]

    tiny_label = snapshot_from(api, "tiny", {"good": 20, "scratch": 2})
    response = start(api, tiny_label)
    assert response.status_code == 400
    assert "Label 'scratch' has" in response.json()["detail"]
    assert "at least 2 train and 1 validation" in response.json()["detail"]

    assert start(api, tiny_label, model="bad/name").status_code == 400
    assert start(api, tiny_label, recipe="magic").status_code == 400
    assert not TrainingRun.objects.exists() and not Job.objects.filter(kind="training").exists()


@pytest.mark.django_db
def test_the_training_process_is_limited_and_an_out_of_memory_run_fails_cleanly(
    api, settings, _media_root
):
    snapshot = snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    files_before = stored_files(_media_root)
    settings.LINESIGHT = {**settings.LINESIGHT, "TRAINING_MEMORY_MB": 300}
    body = start(api, snapshot).json()
    assert job_run(body["job"]["id"]) == "failed"
    run = api.get(f"/api/v1/trainings/{body['id']}/").json()
    assert run["state"] == "failed" and run["version"] is None
    assert "ran out of memory (limit 300 MB" in run["error"]
    assert not MLModel.objects.filter(name="scratches").exists()
    assert stored_files(_media_root) == files_before and training_dirs(body["job"]["id"]) == set()


@pytest.mark.django_db
def test_a_training_over_its_time_limit_is_killed_and_fails(api, settings, _media_root):
    snapshot = snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    settings.LINESIGHT = {**settings.LINESIGHT, "TRAINING_TIMEOUT_SECONDS": 2}
    body = start(api, snapshot).json()
    started = time.monotonic()
    assert job_run(body["job"]["id"]) == "failed"
    assert time.monotonic() - started < 30
    run = api.get(f"/api/v1/trainings/{body['id']}/").json()
    assert "did not finish within 2 s" in run["error"] and "Nothing was registered" in run["error"]
    assert not ModelVersion.objects.exists()


def training_process_ids() -> list[int]:
    """Training processes started by this test process (children running the worker module)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = stat.read_bytes().split(b"\0")
            parent = int((stat.parent / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and b"models_registry.training.worker" in command:
            found.append(int(stat.parent.name))
    return found


def run_in_thread(job_id: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        from django.db import connection

        try:
            outcome["state"] = job_run(job_id)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


@committed_db
def test_cancel_stops_a_running_training_within_seconds_and_registers_nothing(api, _media_root):
    snapshot = snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    files_before = stored_files(_media_root)
    body = start(api, snapshot, settings={**FAST, "epochs": 200}).json()
    thread, outcome = run_in_thread(body["job"]["id"])
    wait_for(lambda: TrainingRun.objects.get(pk=body["id"]).history)  # it is learning
    assert len(training_dirs(body["job"]["id"])) == 1  # its work folder, while it learns

    asked = time.monotonic()
    response = api.post(f"/api/v1/trainings/{body['id']}/cancel/")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    thread.join(timeout=15)
    assert not thread.is_alive() and time.monotonic() - asked < 15
    assert outcome["state"] == "lost" and training_process_ids() == []
    run = api.get(f"/api/v1/trainings/{body['id']}/").json()
    assert run["state"] == "cancelled" and run["version"] is None
    assert not ModelVersion.objects.exists() and not MLModel.objects.exists()
    assert stored_files(_media_root) == files_before and training_dirs(body["job"]["id"]) == set()
    again = api.post(f"/api/v1/trainings/{body['id']}/cancel/")
    assert again.status_code == 400 and "nothing to cancel" in again.json()["detail"]


@committed_db
def test_a_killed_training_process_fails_the_run_with_the_reason(api, _media_root):
    snapshot = snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    files_before = stored_files(_media_root)
    body = start(api, snapshot, settings={**FAST, "epochs": 200}).json()
    thread, outcome = run_in_thread(body["job"]["id"])
    wait_for(lambda: TrainingRun.objects.get(pk=body["id"]).history)
    assert len(training_dirs(body["job"]["id"])) == 1
    (pid,) = training_process_ids()
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer or an operator would
    thread.join(timeout=30)
    assert outcome["state"] == "failed"
    run = api.get(f"/api/v1/trainings/{body['id']}/").json()
    assert run["state"] == "failed" and "was killed (SIGKILL)" in run["error"]
    assert run["version"] is None and not ModelVersion.objects.exists()
    assert stored_files(_media_root) == files_before and training_dirs(body["job"]["id"]) == set()


@committed_db
def test_two_trainings_queue_on_the_training_queue_and_run_one_after_the_other(api):
    snapshot = snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    first = start(api, snapshot, settings={**FAST, "epochs": 1}).json()
    second = start(api, snapshot, settings={**FAST, "epochs": 1}).json()
    jobs = Job.objects.filter(pk__in=[first["job"]["id"], second["job"]["id"]])
    assert {(job.queue, job.state) for job in jobs} == {("training", "queued")}
    call_command(
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--no-reload",
        "--queue-name",
        "training",
        verbosity=0,
    )
    one = api.get(f"/api/v1/trainings/{first['id']}/").json()
    two = api.get(f"/api/v1/trainings/{second['id']}/").json()
    assert (one["state"], two["state"]) == ("done", "done"), (one["error"], two["error"])
    assert (one["version"]["version"], two["version"]["version"]) == (1, 2)
    done = {str(job.pk): job for job in Job.objects.filter(kind="training")}
    # One worker on the queue: the second started after the first finished.
    assert done[two["job"]["id"]].started >= done[one["job"]["id"]].finished


@pytest.mark.django_db
def test_a_training_whose_worker_died_is_swept_failed_and_its_folder_removed(api):
    from datetime import timedelta

    from django.utils import timezone

    from common.jobs import jobs_sweep

    snapshot = snapshot_from(api, "parts", {"good": 8, "scratch": 8})
    body = start(api, snapshot).json()
    job_id = body["job"]["id"]
    # The worker claimed it, made its folder, then died (no heartbeat since).
    folder = tempfile.mkdtemp(prefix=f"linesight-training-{job_id}-")
    stale = timezone.now() - timedelta(minutes=30)
    Job.objects.filter(pk=job_id).update(state="running", started=stale, heartbeat=stale)
    assert jobs_sweep(timeout_seconds=60) == 1
    run = api.get(f"/api/v1/trainings/{body['id']}/").json()
    assert run["state"] == "failed" and "no heartbeat" in run["error"]
    assert not Path(folder).exists() and run["version"] is None
