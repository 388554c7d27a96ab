"""Validation of sound models: what a quality engineer sees on the version afterwards."""

import hashlib
import io
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.management import call_command
from django.db import transaction

from models_registry.models import LabelMapping, ModelVersion
from models_registry.services import model_create, version_upload
from models_registry.validation import validate_version_now
from models_registry.validation.service import label_mappings_sync
from tests import factories
from tests import hostile_models as hostile
from tests.conftest import committed_db, stored_files
from tests.registry import artifact_bytes, cached_sandbox, ready_version
from tests.tf_models import (
    DEFAULT_LABELS,
    colour_classifier,
    keras_file,
    savedmodel_targz,
    savedmodel_zip,
)

pytestmark = pytest.mark.django_db
LABELS = list(DEFAULT_LABELS)
RED = np.zeros((1, 32, 32, 3), dtype="float32")
RED[..., 0] = 1.0


@pytest.fixture(autouse=True)
def work_dir(settings, tmp_path):
    work = tmp_path / "validation-work"
    work.mkdir()
    settings.LINESIGHT = {**settings.LINESIGHT, "SANDBOX_WORK_DIR": str(work)}
    return work


@pytest.fixture(scope="session")
def nested_zip_with_labels() -> bytes:
    """The colour classifier zipped inside one top folder, labels.txt next to saved_model.pb."""
    return savedmodel_zip(colour_classifier(), labels=LABELS, nested="bottle-cap-v7")


@pytest.fixture(scope="session")
def greyscale_uint8_logits_keras():
    """A greyscale model fed raw uint8 pixels that returns logits (no softmax)."""
    import keras

    inputs = keras.Input((32, 32, 1), dtype="uint8", name="pixels")
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(scaled)
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([np.array([[8.0, -8.0]], dtype="float32"), np.array([-4.0, 4.0], "float32")])
    return model


def upload(data: bytes, *, filename: str = "model.zip", labels=None) -> ModelVersion:
    model = model_create(name=factories.unique("model"))
    return version_upload(model=model, artifact=ContentFile(data, name=filename), labels=labels)


def read_stored(field) -> bytes:
    with field.storage.open(field.name, "rb") as handle:
        return handle.read()


def tflite_scores(data: bytes, version: ModelVersion, frame: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    runner = interpreter.get_signature_runner(version.signature_name)
    return runner(**{version.input_name: frame})[version.output_name]


@pytest.mark.slow
def test_savedmodel_zip_becomes_ready_with_signature_labels_and_fast_path(
    nested_zip_with_labels, _media_root, work_dir, tmp_path
):
    factories.defect_type(code="MISSING_CAP")
    version = upload(nested_zip_with_labels)

    version = validate_version_now(version.pk)

    assert version.status == "ready", version.status_reason
    assert version.labels == LABELS  # read from labels.txt in the archive
    assert (version.signature_name, version.input_name) == ("serving_default", "image")
    assert (version.input_height, version.input_width, version.input_channels) == (32, 32, 3)
    assert version.input_dtype == "float32"
    assert version.outputs_probabilities is True
    assert (version.color_mode, version.value_scale, version.resize_mode) == (
        "rgb",
        "0_1",
        "stretch",
    )
    assert version.warmup_latency_ms > 0 and version.tflite_latency_ms > 0
    assert version.validated_at is not None and version.validation_seconds > 0
    assert version.serving_runtime == "tflite"
    assert version.serving_runtime_reason.startswith("TFLite parity passed on 35 generated frames")
    assert version.tflite_max_abs_diff <= 1e-3

    # ok → no defect; MISSING_CAP matched case-insensitively; crack left to the engineer.
    meanings = [(m.index, m.label, m.meaning) for m in version.mappings.all()]
    assert meanings == [
        (0, "ok", "no defect"),
        (1, "missing_cap", "MISSING_CAP"),
        (2, "crack", "unmapped"),
    ]

    # The normalised SavedModel has saved_model.pb at its root and serves a red frame as 'ok'.
    import tensorflow as tf

    served_zip, lite_model = (
        read_stored(version.serving_savedmodel),
        read_stored(version.tflite_artifact),
    )
    assert version.serving_savedmodel_sha256 == hashlib.sha256(served_zip).hexdigest()
    assert version.tflite_sha256 == hashlib.sha256(lite_model).hexdigest()
    with zipfile.ZipFile(io.BytesIO(served_zip)) as bundle:
        names = bundle.namelist()
        assert "saved_model.pb" in names and "labels.txt" not in names
        bundle.extractall(tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served")).signatures[version.signature_name]
    scores = served(**{version.input_name: tf.constant(RED)})[version.output_name].numpy()
    assert scores.argmax() == 0 and scores.max() > 0.99
    lite = tflite_scores(lite_model, version, RED)
    assert lite.argmax() == 0 and abs(lite.max() - scores.max()) <= 1e-3

    assert len(stored_files(_media_root)) == 3  # upload, savedmodel.zip, model.tflite
    assert list(work_dir.iterdir()) == []


@pytest.mark.slow
def test_tar_gz_savedmodel_with_labels_given_at_upload_becomes_ready():
    data = savedmodel_targz(colour_classifier(labels=("good", "dent")))
    version = validate_version_now(upload(data, filename="m.tar.gz", labels=["good", "dent"]).pk)
    assert version.status == "ready", version.status_reason
    assert version.labels == ["good", "dent"]
    assert [m.meaning for m in version.mappings.all()] == ["no defect", "unmapped"]


@pytest.mark.slow
def test_keras_file_is_exported_to_a_servable_savedmodel():
    data = keras_file(colour_classifier())
    version = validate_version_now(upload(data, filename="cap.keras", labels=LABELS).pk)
    assert version.status == "ready", version.status_reason
    assert version.input_name == "image" and version.input_channels == 3
    with zipfile.ZipFile(io.BytesIO(read_stored(version.serving_savedmodel))) as bundle:
        assert "saved_model.pb" in bundle.namelist()
    lite = tflite_scores(read_stored(version.tflite_artifact), version, RED)
    assert lite.argmax() == 0


def test_keras_file_without_labels_is_invalid_with_the_reason():
    version = validate_version_now(upload(keras_file(colour_classifier()), filename="m.keras").pk)
    assert version.status == "invalid"
    assert "a .keras file carries none" in version.status_reason


@pytest.mark.slow
def test_greyscale_uint8_logits_model_gets_matching_defaults(greyscale_uint8_logits_keras):
    data = savedmodel_zip(greyscale_uint8_logits_keras)
    version = validate_version_now(upload(data, labels=["ok", "scratch"]).pk)
    assert version.status == "ready", version.status_reason
    assert (version.input_channels, version.input_dtype) == (1, "uint8")
    assert (version.color_mode, version.value_scale) == ("grayscale", "0_255")
    assert version.outputs_probabilities is False  # the runtime will apply softmax
    assert version.serving_runtime == "tflite", version.serving_runtime_reason
    white = np.full((1, 32, 32, 1), 255, dtype="uint8")
    assert tflite_scores(read_stored(version.tflite_artifact), version, white).argmax() == 0


@pytest.mark.slow
def test_model_whose_tflite_form_disagrees_is_served_by_savedmodel_with_the_reason():
    version = validate_version_now(upload(hostile.noisy_model()).pk)
    assert version.status == "ready", version.status_reason
    assert version.serving_runtime == "savedmodel"
    assert version.serving_runtime_reason.startswith("TFLite parity: ")
    assert "> 0.001" in version.serving_runtime_reason
    assert version.tflite_max_abs_diff > 1e-3
    assert version.tflite_artifact  # kept for edge devices that accept the difference


def test_ready_version_helper_gives_a_mapped_deployable_version():
    version = ready_version(model_name="bottle-cap", resize_mode="letterbox")
    assert version.status == "ready" and version.model.name == "bottle-cap"
    assert version.resize_mode == "letterbox"
    assert all(m.is_mapped for m in version.mappings.all())
    station = factories.station()
    deployment = factories.deployment(station_obj=station, version=version)
    assert deployment.is_active


def test_revalidation_keeps_mappings_and_preprocessing_and_replaces_serving_files(
    _media_root, django_capture_on_commit_callbacks
):
    version = ready_version(
        mapping={"ok": None, "missing_cap": "cap_missing", "crack": "crack"},
        resize_mode="center_crop",
    )
    revision = version.mapping_revision
    old_files = {version.serving_savedmodel.name, version.tflite_artifact.name}

    with django_capture_on_commit_callbacks(execute=True):
        version = validate_version_now(version.pk, sandbox=cached_sandbox)

    assert version.status == "ready"
    assert version.resize_mode == "center_crop"
    assert [m.meaning for m in version.mappings.all()] == ["no defect", "cap_missing", "crack"]
    assert version.mapping_revision == revision  # nothing changed for the workers' rules
    new_files = {version.serving_savedmodel.name, version.tflite_artifact.name}
    assert not old_files & new_files
    assert sorted(stored_files(_media_root)) == sorted([version.artifact.name, *new_files])


def test_version_stuck_in_validating_is_repaired_by_running_again():
    version = upload(artifact_bytes(), labels=LABELS)
    ModelVersion.objects.filter(pk=version.pk).update(status="validating")  # a killed worker's run
    version = validate_version_now(version.pk, sandbox=cached_sandbox)
    assert version.status == "ready"


class TFLiteRefusingStorage(FileSystemStorage):
    """A storage that fails like a full disk, for the TFLite file only."""

    def _save(self, name, content):
        if name.endswith(".tflite"):
            raise OSError(28, "No space left on device")
        return super()._save(name, content)


def test_storage_failure_leaves_no_files_and_the_version_not_ready(settings, _media_root):
    ready = ready_version()  # also fills the sandbox cache for the default artifact
    before = stored_files(_media_root)
    version = upload(artifact_bytes(), labels=LABELS)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": f"{__name__}.TFLiteRefusingStorage",
            "OPTIONS": {"location": str(_media_root)},
        },
    }
    with pytest.raises(OSError, match="No space left"):
        validate_version_now(version.pk, sandbox=cached_sandbox)
    version.refresh_from_db()
    assert version.status == "invalid"
    assert "No space left on device" in version.status_reason
    assert not version.serving_savedmodel and not version.mappings.exists()
    assert stored_files(_media_root) == sorted([*before, version.artifact.name])
    ready.refresh_from_db()
    assert ready.status == "ready"


def test_labels_map_to_no_defect_words_and_defect_codes_in_any_case():
    factories.defect_type(code="scratch")
    factories.defect_type(code="dent", archived=True)
    version = factories.version_row(labels=(), mapping={})
    changed = label_mappings_sync(
        version=version, labels=["Good", "SCRATCH", "no-defect", "dent", "blob"]
    )
    assert changed is False  # a first validation only creates rows
    meanings = {m.label: m.meaning for m in version.mappings.all()}
    assert meanings == {
        "Good": "no defect",
        "SCRATCH": "scratch",
        "no-defect": "no defect",
        "dent": "unmapped",  # archived defect types are not offered
        "blob": "unmapped",
    }


def test_relabelled_version_keeps_mappings_of_unchanged_labels():
    version = factories.version_row(
        labels=("ok", "crack", "dent"), mapping={"ok": None, "crack": "crack", "dent": "crack"}
    )
    assert label_mappings_sync(version=version, labels=["ok", "dent", "scratch"]) is True
    rows = list(version.mappings.order_by("index").values_list("index", "label"))
    assert rows == [(0, "ok"), (1, "dent"), (2, "scratch")]
    meanings = [m.meaning for m in LabelMapping.objects.filter(version=version).order_by("index")]
    assert meanings == ["no defect", "crack", "unmapped"]


def test_worker_side_of_validation_does_not_import_tensorflow():
    code = (
        "import django, sys; django.setup();"
        "import models_registry.tasks, models_registry.validation.service;"
        "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    env = {"DJANGO_SETTINGS_MODULE": "config.settings_test", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def keep_signal_handlers():
    """db_worker installs its own SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.slow
@committed_db
def test_upload_is_validated_by_the_task_worker(keep_signal_handlers):
    model = model_create(name="worker-model")
    with transaction.atomic():
        version = version_upload(
            model=model, artifact=ContentFile(artifact_bytes(), name="m.zip"), labels=LABELS
        )
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    version.refresh_from_db()
    assert version.status == "ready", version.status_reason
    assert version.serving_runtime == "tflite"


@pytest.mark.slow
@committed_db
def test_queued_task_leaves_a_version_validated_meanwhile_alone(keep_signal_handlers):
    from django_tasks_db.models import DBTaskResult

    model = model_create(name="validated-meanwhile")
    with transaction.atomic():
        version = version_upload(
            model=model, artifact=ContentFile(artifact_bytes(), name="m.zip"), labels=LABELS
        )
    validated = validate_version_now(version.pk)  # as seed_demo does, before any worker runs
    assert validated.status == "ready"
    stamp = validated.validated_at

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)

    validated.refresh_from_db()
    assert validated.validated_at == stamp  # not validated a second time
    assert DBTaskResult.objects.get().return_value == "ready"
