"""Evaluating versions on a dataset snapshot: as a job, over the API, as the line serves.

Real tiny TensorFlow models (the colour classifier: red 'ok', green
'missing_cap', blue 'crack', grey unsure), real stored images, the real job
run function.
"""

import hashlib
import io
import signal
from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from PIL import Image

from common.jobs import job_retry, job_run, jobs_sweep
from common.models import Job, JobState
from common.preprocessing import Preprocessing, model_input, open_frame
from masterdata.models import DefectType
from models_registry.datasets.models import (
    Dataset,
    DatasetImage,
    DatasetLabel,
    DatasetSnapshot,
    SnapshotImage,
)
from models_registry.evaluation.jobs import image_input
from models_registry.evaluation.models import Evaluation, EvaluationResult
from models_registry.evaluation.services import evaluation_start, version_enable_fast_path
from models_registry.runtime import configured_runtime
from models_registry.runtime.tensorflow import TensorFlowRuntime
from tests import factories
from tests.conftest import committed_db
from tests.images import BLUE, GREEN, GREY, RED, frame_bytes
from tests.models_registry.test_api import client_for
from tests.registry import ready_version
from tests.tf_models import colour_classifier

pytestmark = pytest.mark.django_db


def snapshot_of(images, *, name="bottles", meanings=None) -> DatasetSnapshot:
    """A dataset with ``images`` ((bytes, label, split) each) frozen as snapshot 1.

    ``meanings`` maps a label to a defect type code, or None for 'no defect'.
    """
    dataset = Dataset.objects.create(name=name)
    labels: dict[str, DatasetLabel] = {}
    items = []
    for number, (data, label, split) in enumerate(images):
        if label not in labels:
            meaning = {}
            if meanings is not None and label in meanings:
                code = meanings[label]
                meaning = (
                    {"no_defect": True}
                    if code is None
                    else {"defect_type": DefectType.objects.get_or_create(code=code)[0]}
                )
            labels[label] = DatasetLabel.objects.create(dataset=dataset, name=label, **meaning)
        pillow = Image.open(io.BytesIO(data))
        image = DatasetImage(
            dataset=dataset,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            width=pillow.width,
            height=pillow.height,
            mode=pillow.mode,
            format=pillow.format,
            label=labels[label],
            split=split,
            original_name=f"{label}/{number}.{pillow.format.lower()}",
        )
        image.file.save(f"{number}.img", ContentFile(data), save=False)
        image.save()
        items.append(SnapshotImage(image=image, label=labels[label], split=split))
    snapshot = DatasetSnapshot.objects.create(dataset=dataset, number=1, image_count=len(items))
    for item in items:
        item.snapshot = snapshot
    SnapshotImage.objects.bulk_create(items)
    return snapshot


def colour_set(split="test") -> list[tuple[bytes, str, str]]:
    """Four red 'ok', three green 'missing_cap', three blue 'crack' (distinct bytes each)."""
    rows = []
    for colour, label, count in ((RED, "ok", 4), (GREEN, "missing_cap", 3), (BLUE, "crack", 3)):
        for n in range(count):
            rows.append((frame_bytes(colour, size=(40 + n, 30)), label, split))
    return rows


def blue_green_swapped():
    """A model that calls green 'crack' and blue 'missing_cap': a worse challenger."""
    model = colour_classifier()
    dense = model.get_layer("scores")
    weights, bias = dense.get_weights()
    dense.set_weights([weights[:, [0, 2, 1]], bias])
    return model


def run(evaluation: Evaluation) -> Evaluation:
    job_run(str(evaluation.job_id))  # what the evaluations worker does with the job's id
    return Evaluation.objects.select_related("job").get(pk=evaluation.pk)


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


def test_champion_against_challenger_over_the_api(engineer):
    champion = ready_version(model_name="bottle")
    challenger = ready_version(model_name="bottle-b", keras_model=blue_green_swapped())
    snapshot_of([*colour_set(), (frame_bytes(RED, size=(50, 50)), "ok", "train")])
    api = client_for(engineer)

    response = api.post(
        "/api/v1/evaluations/",
        {
            "dataset": "bottles",
            "snapshot": 1,
            "split": "test",
            "model": "bottle",
            "version": champion.number,
            "challenger": {"model": "bottle-b", "version": challenger.number},
        },
        format="json",
    )
    assert response.status_code == 202, response.json()
    assert response.json()["state"] == "queued"
    evaluation = run(Evaluation.objects.get(pk=response.json()["id"]))
    assert evaluation.job.state == JobState.DONE, evaluation.job.error

    body = api.get(f"/api/v1/evaluations/{evaluation.pk}/").json()
    assert body["state"] == "done"
    assert body["image_count"] == 10  # the test split only
    metrics, theirs = body["metrics"], body["challenger_metrics"]
    assert (metrics["accuracy"], metrics["macro_f1"]) == (1.0, 1.0)
    assert metrics["confusion"]["matrix"] == [[4, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert metrics["ece"] < 0.01  # near-certain and right
    assert metrics["latency_ms"]["p50"] > 0
    assert theirs["accuracy"] == 0.4  # only the reds
    assert theirs["confusion"]["matrix"] == [[4, 0, 0], [0, 0, 3], [0, 3, 0]]
    assert theirs["per_label"]["crack"]["recall"] == 0.0
    paired = body["paired_test"]
    assert (paired["only_champion_right"], paired["only_challenger_right"]) == (6, 0)
    assert paired["method"] == "exact binomial"
    assert paired["p_value"] == pytest.approx(2 / 64)
    assert paired["significant"] is True

    # The dataset's labels are unmapped but named as the model's: the version's mapping
    # tells which are defects, so the line simulation runs (default thresholds).
    line = body["line"]["version"]
    assert line["shares"] == {"pass": 0.4, "fail": 0.6, "review": 0.0}
    assert (line["escapes"], line["false_rejects"]) == (0, 0)
    assert set(line["suggestions"]) == {"missing_cap", "crack"}

    rows = api.get(f"/api/v1/evaluations/{evaluation.pk}/results/").json()
    assert rows["count"] == 10
    first = rows["results"][0]
    assert set(first) >= {"sha256", "label", "predicted", "confidence", "challenger"}
    assert (first["label"], first["predicted"]) == ("ok", "ok")
    assert first["confidence"] > 0.99
    differ = api.get(f"/api/v1/evaluations/{evaluation.pk}/results/?disagree=true").json()
    assert differ["count"] == 6
    assert {(r["label"], r["challenger"]["predicted"]) for r in differ["results"]} == {
        ("missing_cap", "crack"),
        ("crack", "missing_cap"),
    }


def test_the_line_simulation_uses_the_deployments_thresholds():
    version = ready_version(model_name="bottle")
    station = factories.station(code="ST9")
    deployment = factories.deployment(
        station_obj=station, version=version, confidence_threshold=0.8
    )
    greys = [(frame_bytes(GREY, size=(30 + n, 30)), "crack", "test") for n in range(2)]
    snapshot = snapshot_of(
        colour_set() + greys,
        meanings={"ok": None, "missing_cap": "missing_cap", "crack": "crack"},
    )
    with pytest.raises(Exception, match="serves ST9"):
        version_enable_fast_path(version=version)
    evaluation = run(evaluation_start(version=version, snapshot=snapshot, deployment=deployment))
    line = evaluation.line["version"]
    # 4 reds pass; 3 green and 3 blue fail; the 2 greys are unsure: review.
    assert line["shares"] == {"pass": 4 / 12, "fail": 6 / 12, "review": 2 / 12}
    assert (line["escapes"], line["false_rejects"]) == (0, 0)
    assert line["review_load"] == pytest.approx(8 / 12)
    assert evaluation.line["thresholds"]["deployment"] == deployment.pk
    assert evaluation.metrics["accuracy"] == pytest.approx(10 / 12)


def test_labels_are_compared_through_their_mappings_when_names_differ():
    version = ready_version(model_name="bottle")
    renamed = {"ok": "good", "missing_cap": "no_cap", "crack": "cracked"}
    rows = [(data, renamed[label], split) for data, label, split in colour_set()]
    snapshot = snapshot_of(
        rows, meanings={"good": None, "no_cap": "missing_cap", "cracked": "crack"}
    )
    evaluation = run(evaluation_start(version=version, snapshot=snapshot))
    assert evaluation.label_space == "meanings"
    assert evaluation.metrics["accuracy"] == 1.0
    assert set(evaluation.classes) == {"no defect", "missing_cap", "crack"}
    row = EvaluationResult.objects.filter(evaluation=evaluation, truth="crack").first()
    assert (row.predicted_label, row.predicted) == ("crack", "crack")


def test_clear_errors_before_any_job_starts(engineer):
    version = ready_version(model_name="bottle")
    api = client_for(engineer)
    snapshot_of(colour_set())
    renamed = [
        (data, "good" if label == "ok" else "broken", split) for data, label, split in colour_set()
    ]
    snapshot_of(renamed, name="strangers")
    snapshot_of(renamed, name="dents", meanings={"good": None, "broken": "dent"})

    def post(**fields):
        body = {"dataset": "bottles", "snapshot": 1, "model": "bottle", "version": version.number}
        return api.post("/api/v1/evaluations/", {**body, **fields}, format="json")

    response = post(split="train")
    assert response.status_code == 400
    assert "has no train images" in response.json()["detail"]
    response = post(dataset="strangers")
    assert response.status_code == 400
    assert "map broken, good to a defect type" in response.json()["detail"]
    response = post(dataset="dents")
    assert response.status_code == 400
    assert "means dent" in response.json()["detail"]
    version.status, version.status_reason = "invalid", "The graph reads files."
    version.save()
    response = post()
    assert response.status_code == 400
    assert "invalid (The graph reads files.)" in response.json()["detail"]
    assert post(dataset="nope").status_code == 400
    assert Evaluation.objects.count() == 0
    assert Job.objects.count() == 0


def test_a_worker_that_died_mid_run_fails_the_job_and_it_runs_again():
    version = ready_version(model_name="bottle")
    evaluation = run(evaluation_start(version=version, snapshot=snapshot_of(colour_set())))
    assert evaluation.results.count() == 10
    # As if the worker had died before finishing: running, its heartbeat long silent.
    Job.objects.filter(pk=evaluation.job_id).update(
        state=JobState.RUNNING, heartbeat=timezone.now() - timedelta(hours=1)
    )
    assert jobs_sweep() == 1
    job = Job.objects.get(pk=evaluation.job_id)
    assert job.state == JobState.FAILED and job.error
    assert evaluation.results.count() == 0  # no half result left to read
    job_retry(job=job)
    evaluation = run(evaluation)
    assert evaluation.job.state == JobState.DONE
    assert evaluation.results.count() == 10  # not twice


def noisy_jpeg(seed: int, size=(640, 480)) -> bytes:
    """A mostly red photo with fine detail, so reduced-scale decoding shows."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 90, (size[1], size[0], 3), dtype=np.uint8)
    pixels[..., 0] = rng.integers(150, 256, (size[1], size[0]), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def test_a_frame_and_a_dataset_image_of_the_same_bytes_are_the_same_tensor(api_client):
    from inspection.models import Inspection
    from inspection.runtime import model_cache
    from tests.inspection.test_api_frames import post_frame

    version = ready_version(model_name="bottle")
    station, token = factories.station_with_token(code="ST1")
    factories.deployment(station_obj=station, version=version)
    data = noisy_jpeg(1)

    # The serving path: the frame's header checked by the frame service, then the
    # cached model's own preprocessing (what LoadedModel.classify feeds the model).
    loaded = model_cache().get(version)
    frame = open_frame(data, max_pixels=settings.LINESIGHT["MAX_FRAME_PIXELS"])
    served = model_input(frame, loaded.preprocessing)
    # The evaluation path: a dataset image's bytes, the version's preprocessing.
    evaluated = image_input(data, Preprocessing.for_version(version))
    assert served.dtype == evaluated.dtype
    assert np.array_equal(served, evaluated)
    fast = image_input(data, Preprocessing(**{**loaded.preprocessing.__dict__, "jpeg_draft": True}))
    assert not np.array_equal(fast, evaluated)  # the decode path shows in the tensor

    response = post_frame(api_client, token=token, image=data)
    assert response.status_code == 201, response.json()
    evaluation = run(
        evaluation_start(version=version, snapshot=snapshot_of([(data, "ok", "test")]))
    )
    result = evaluation.results.get()
    inspection = Inspection.objects.get()
    assert result.predicted_label == inspection.label
    assert round(result.confidence, 6) == pytest.approx(float(inspection.confidence), abs=1e-6)


def test_fast_path_is_enabled_only_on_evidence():
    version = ready_version(model_name="bottle")
    snapshot = snapshot_of(colour_set())
    evaluation = run(evaluation_start(version=version, snapshot=snapshot, check_fast_path=True))
    assert evaluation.fast_path == {"images": 10, "agree": 10, "agreement": 1.0}
    assert set(evaluation.results.values_list("fast_path_predicted", flat=True)) == {
        "ok",
        "missing_cap",
        "crack",
    }

    other = ready_version(model_name="bottle")
    with pytest.raises(Exception, match="not of bottle v2"):
        version_enable_fast_path(version=other, evaluation=evaluation)
    weak = Evaluation.objects.get(pk=evaluation.pk)
    weak.fast_path = {"images": 1000, "agree": 998, "agreement": 0.998}
    with pytest.raises(Exception, match=r"99\.80% of the images; at least 99\.9%"):
        version_enable_fast_path(version=version, evaluation=weak)
    version.refresh_from_db()
    assert version.jpeg_draft is False

    api = client_for(factories.engineer(username="qe"))
    response = api.post(f"/api/v1/evaluations/{evaluation.pk}/enable-fast-path/")
    assert response.status_code == 200, response.json()
    assert response.json() == {"model": "bottle", "number": version.number, "jpeg_draft": True}
    version.refresh_from_db()
    assert version.jpeg_draft is True


class RecordingRuntime(TensorFlowRuntime):
    """The real TensorFlow runtime, noting which versions it was asked to load."""

    loads: list[int] = []

    def load(self, version):
        RecordingRuntime.loads.append(version.pk)
        return super().load(version)


@pytest.fixture
def recording_runtime(settings):
    """LINESIGHT["RUNTIME"] names RecordingRuntime; each process-wide cache starts afresh."""
    from inspection.runtime import model_cache

    settings.LINESIGHT = {**settings.LINESIGHT, "RUNTIME": f"{__name__}.RecordingRuntime"}
    RecordingRuntime.loads = []
    configured_runtime.cache_clear()
    model_cache.cache_clear()
    yield RecordingRuntime
    configured_runtime.cache_clear()
    model_cache.cache_clear()


@pytest.mark.parametrize("kind", ["tflite", "savedmodel"])
def test_the_evaluator_loads_through_the_runtime_serving_uses(recording_runtime, kind):
    from inspection.runtime import model_cache

    version = ready_version(model_name="bottle")
    version.serving_runtime = kind
    version.save()
    data = frame_bytes(GREEN)
    frame = open_frame(data, max_pixels=settings.LINESIGHT["MAX_FRAME_PIXELS"])
    served = model_cache().get(version).classify(frame)
    evaluation = run(
        evaluation_start(version=version, snapshot=snapshot_of([(data, "missing_cap", "test")]))
    )
    assert evaluation.job.state == JobState.DONE, evaluation.job.error
    # Serving's cache, then the evaluator: both through the runtime the setting names.
    assert recording_runtime.loads == [version.pk, version.pk]
    assert evaluation.metrics["runtime"] == kind
    assert evaluation.results.get().scores == [round(float(s), 6) for s in served.scores]


def test_a_tampered_artifact_fails_the_job_with_the_reason():
    version = ready_version(model_name="bottle")
    evaluation = evaluation_start(version=version, snapshot=snapshot_of(colour_set()))
    storage, name = version.tflite_artifact.storage, version.tflite_artifact.name
    storage.delete(name)
    storage.save(name, ContentFile(b"not the model that was validated"))
    evaluation = run(evaluation)
    assert evaluation.job.state == JobState.FAILED
    assert "does not match its checksum" in evaluation.job.error
    assert evaluation.results.count() == 0


@pytest.fixture
def keep_signal_handlers():
    """db_worker installs its own signal handlers; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@committed_db
def test_the_evaluations_worker_runs_an_evaluation_and_no_other_worker_does(keep_signal_handlers):
    version = ready_version(model_name="bottle")
    with transaction.atomic():
        evaluation = evaluation_start(version=version, snapshot=snapshot_of(colour_set()))

    def worker(queues: str) -> None:
        call_command(
            "db_worker",
            "--batch",
            "--no-startup-delay",
            "--no-reload",
            "--queue-name",
            queues,
            verbosity=0,
        )

    worker("default,validation,exports")  # validations and exports never wait for it...
    worker("imports")
    assert Job.objects.get(pk=evaluation.job_id).state == JobState.QUEUED
    worker("evaluations")  # ...and it never waits for them
    job = Job.objects.get(pk=evaluation.job_id)
    assert job.state == JobState.DONE, job.error
    assert job.result["accuracy"] == 1.0


def test_bmp_and_tiff_images_are_evaluated_and_a_damaged_one_is_listed_not_fatal():
    version = ready_version(model_name="bottle")
    whole = noisy_jpeg(3, size=(64, 64))
    truncated = whole[: len(whole) * 2 // 3]  # the header reads; the pixels do not
    snapshot = snapshot_of(
        [
            (frame_bytes(RED, fmt="BMP"), "ok", "test"),
            (frame_bytes(GREEN, fmt="TIFF"), "missing_cap", "test"),
            (truncated, "crack", "test"),
        ]
    )
    evaluation = run(evaluation_start(version=version, snapshot=snapshot))
    assert evaluation.job.state == JobState.DONE, evaluation.job.error
    assert evaluation.metrics["count"] == 2
    assert evaluation.metrics["accuracy"] == 1.0
    assert evaluation.metrics["skipped_count"] == 1
    assert "crack/2.jpeg" in evaluation.metrics["skipped"][0]
    assert "damaged" in evaluation.metrics["skipped"][0]
