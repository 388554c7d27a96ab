"""Hostile and broken uploads: each ends ``invalid`` with a reason, leaves nothing behind,
and the web process keeps serving."""

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from models_registry.artifacts import artifact_format_for
from models_registry.models import ModelVersion
from models_registry.services import model_create, version_upload
from models_registry.validation import validate_version_now
from models_registry.validation.report import SandboxRequest
from models_registry.validation.runner import PROJECT_ROOT
from tests import factories
from tests import hostile_models as hostile
from tests.conftest import stored_files
from tests.registry import artifact_bytes
from tests.tf_models import DEFAULT_LABELS

pytestmark = pytest.mark.django_db
LABELS = list(DEFAULT_LABELS)


@pytest.fixture(autouse=True)
def work_dir(settings, tmp_path):
    """Validation's temporary folders go here, so 'nothing left behind' can be checked."""
    work = tmp_path / "validation-work"
    work.mkdir()
    settings.LINESIGHT = {**settings.LINESIGHT, "SANDBOX_WORK_DIR": str(work)}
    return work


@pytest.fixture
def limits(settings):
    def set_limits(**values):
        settings.LINESIGHT = {**settings.LINESIGHT, **values}

    return set_limits


def validate_upload(data: bytes, *, filename: str = "model.zip", labels=None):
    """Upload and validate. An artifact the upload already refuses (its listing shows the
    problem; tests/models_registry/test_admin_registry.py checks that) is stored as one kept
    from before that check: validation must refuse it on its own."""
    model = model_create(name=factories.unique("model"))
    try:
        version = version_upload(
            model=model, artifact=ContentFile(data, name=filename), labels=labels
        )
    except ValidationError:
        version = stored_without_upload_check(model, data, filename, labels)
    return validate_version_now(version.pk)


def stored_without_upload_check(model, data: bytes, filename: str, labels) -> ModelVersion:
    """The row version_upload makes, without its checks (an upload from before them)."""
    version = ModelVersion(
        model=model,
        number=1,
        artifact_format=artifact_format_for(filename),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        labels=list(labels or []),
    )
    version.artifact.save(filename, ContentFile(data), save=False)
    version.save()
    return version


@pytest.fixture
def assert_refused(client, _media_root, work_dir):
    def check(version, reason: str) -> None:
        version.refresh_from_db()
        assert version.status == "invalid"
        assert reason in version.status_reason
        assert version.validated_at is not None
        assert not version.serving_savedmodel and not version.tflite_artifact
        assert not version.mappings.exists()
        assert stored_files(_media_root) == [version.artifact.name]
        assert list(work_dir.iterdir()) == []
        assert client.get("/healthz").status_code == 200

    return check


# --- archives -------------------------------------------------------------------


def test_archive_entry_climbing_out_with_dotdot_is_refused(assert_refused, tmp_path):
    data = hostile.zip_bytes(
        {"saved_model.pb": b"\x08\x01", "../../../escaped.txt": b"owned", "labels.txt": b"ok"}
    )
    version = validate_upload(data, labels=LABELS)
    assert_refused(version, "points outside the archive ('..')")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_archive_entry_with_absolute_path_is_refused(assert_refused, tmp_path):
    target = tmp_path / "absolute.txt"
    data = hostile.zip_bytes({"saved_model.pb": b"\x08\x01", str(target): b"owned"})
    version = validate_upload(data, labels=LABELS)
    assert_refused(version, "has an absolute path")
    assert not target.exists()


def test_tar_entry_with_absolute_path_is_refused(assert_refused, tmp_path):
    target = tmp_path / "absolute.txt"
    data = hostile.targz_bytes(lambda tar: hostile.tar_add_file(tar, str(target), b"owned"))
    version = validate_upload(data, filename="model.tar.gz", labels=LABELS)
    assert_refused(version, "has an absolute path")
    assert not target.exists()


def test_zip_with_symlink_is_refused(assert_refused):
    version = validate_upload(hostile.zip_with_symlink(), labels=LABELS)
    assert_refused(version, "'variables' is a symbolic link")


@pytest.mark.parametrize("hard", [False, True], ids=["symlink", "hardlink"])
def test_tar_with_link_is_refused(assert_refused, hard):
    def add(tar: tarfile.TarFile) -> None:
        hostile.tar_add_file(tar, "saved_model.pb", b"\x08\x01")
        hostile.tar_add_link(
            tar, "variables", "/etc/passwd" if not hard else "saved_model.pb", hard=hard
        )

    version = validate_upload(hostile.targz_bytes(add), filename="model.tgz", labels=LABELS)
    assert_refused(version, f"'variables' is a {'hard' if hard else 'symbolic'} link")


def test_tar_with_device_file_is_refused(assert_refused):
    def add(tar: tarfile.TarFile) -> None:
        hostile.tar_add_file(tar, "saved_model.pb", b"\x08\x01")
        hostile.tar_add_device(tar, "variables")

    version = validate_upload(hostile.targz_bytes(add), filename="model.tar.gz", labels=LABELS)
    assert_refused(version, "is a device or special file")


@pytest.mark.parametrize(
    "names",
    [("variables/x", "variables/x"), ("variables", "variables/x"), ("variables/x", "variables")],
    ids=["twice", "file-then-folder", "folder-then-file"],
)
def test_tar_with_clashing_entries_is_refused(assert_refused, names):
    def add(tar: tarfile.TarFile) -> None:
        hostile.tar_add_file(tar, "saved_model.pb", b"\x08\x01")
        for name in names:
            hostile.tar_add_file(tar, name, b"data")

    version = validate_upload(hostile.targz_bytes(add), filename="model.tar.gz", labels=LABELS)
    assert_refused(version, "twice, or as both a file and a folder")


def test_archive_with_too_many_entries_is_refused(assert_refused, limits):
    limits(ARCHIVE_MAX_ENTRIES=20)
    entries = {f"assets/{i}.txt": b"x" for i in range(25)}
    version = validate_upload(hostile.zip_bytes({"saved_model.pb": b"\x08\x01", **entries}))
    assert_refused(version, "more than 20 entries")


def test_tar_with_too_many_entries_is_refused(assert_refused, limits):
    limits(ARCHIVE_MAX_ENTRIES=20)

    def add(tar: tarfile.TarFile) -> None:
        for i in range(25):
            hostile.tar_add_file(tar, f"assets/{i}.txt", b"x")

    version = validate_upload(hostile.targz_bytes(add), filename="m.tar.gz", labels=LABELS)
    assert_refused(version, "more than 20 entries")


def test_zip_bomb_over_the_compression_ratio_is_refused(assert_refused, limits):
    limits(ARCHIVE_MAX_RATIO=100)
    version = validate_upload(hostile.zip_bomb(unpacked_bytes=64 * 1024 * 1024), labels=LABELS)
    assert_refused(version, "a ratio over 100:1")


def test_tar_bomb_over_the_compression_ratio_is_refused(assert_refused, limits):
    limits(ARCHIVE_MAX_RATIO=100)
    zeros = b"\0" * (16 * 1024 * 1024)
    data = hostile.targz_bytes(lambda tar: hostile.tar_add_file(tar, "variables/data", zeros))
    version = validate_upload(data, filename="model.tar.gz", labels=LABELS)
    assert_refused(version, "a ratio over 100:1")


def test_archive_over_the_unpacked_size_limit_is_refused(assert_refused, limits):
    limits(ARCHIVE_MAX_UNPACKED_BYTES=1024 * 1024)
    incompressible = os.urandom(2 * 1024 * 1024)
    version = validate_upload(
        hostile.zip_bytes({"saved_model.pb": b"\x08\x01", "variables/data": incompressible}),
        labels=LABELS,
    )
    assert_refused(version, "declares more than 1,048,576 bytes unpacked")


def test_corrupt_zip_is_refused(assert_refused):
    whole = artifact_bytes()
    version = validate_upload(whole[: len(whole) // 2], labels=LABELS)
    assert_refused(version, "is not a readable zip archive")


def test_corrupt_tar_gz_is_refused(assert_refused):
    def add(tar: tarfile.TarFile) -> None:
        hostile.tar_add_file(tar, "saved_model.pb", os.urandom(64 * 1024))

    whole = hostile.targz_bytes(add)
    version = validate_upload(whole[: len(whole) // 2], filename="m.tar.gz", labels=LABELS)
    assert_refused(version, "is not a readable .tar.gz")


def test_archive_without_savedmodel_is_refused(assert_refused):
    data = hostile.zip_bytes({"model/weights.h5": b"\x89HDF", "README.md": b"hello"})
    version = validate_upload(data, labels=LABELS)
    assert_refused(version, "holds no SavedModel (no saved_model.pb); found: README.md, model/")


def test_savedmodel_buried_two_folders_deep_is_refused_with_where_it_is(assert_refused):
    data = hostile.zip_bytes({"a/b/saved_model.pb": b"\x08\x01"})
    version = validate_upload(data, labels=LABELS)
    assert_refused(version, "saved_model.pb is at 'a/b/saved_model.pb'")


def test_archive_without_labels_is_refused(assert_refused):
    version = validate_upload(hostile.zip_bytes({"saved_model.pb": b"\x08\x01"}))
    assert_refused(version, "the archive has no labels.txt")


def test_keras_metadata_with_lambda_layer_is_refused(assert_refused):
    data = hostile.zip_bytes(
        {"saved_model.pb": b"\x08\x01", "keras_metadata.pb": hostile.keras_metadata_with_lambda()}
    )
    version = validate_upload(data, labels=LABELS)
    assert_refused(version, "Keras metadata describes a Lambda layer")


def test_keras_file_with_lambda_layer_is_refused(assert_refused):
    version = validate_upload(hostile.lambda_keras_file(), filename="model.keras", labels=LABELS)
    assert_refused(version, "Keras Lambda layer 'double'")


def test_keras_file_that_is_not_a_zip_is_refused(assert_refused):
    version = validate_upload(b"\x89HDF\r\n\x1a\n" + b"\0" * 64, filename="m.keras", labels=LABELS)
    assert_refused(version, "The .keras file is not a readable zip archive")


# --- models (these run the sandbox process) ----------------------------------------


@pytest.mark.slow
def test_model_with_more_outputs_than_labels_is_refused(assert_refused):
    version = validate_upload(artifact_bytes(), labels=["ok", "missing_cap", "crack", "dent"])
    assert_refused(version, "returns 3 scores per frame but the version has 4 labels")


@pytest.mark.slow
def test_model_whose_input_is_not_an_image_is_refused(assert_refused):
    version = validate_upload(hostile.non_image_model())
    assert_refused(version, "'image' has shape (None, 10); it is not an image")


@pytest.mark.slow
def test_model_reading_and_writing_files_is_refused_before_it_runs(assert_refused, tmp_path):
    target = tmp_path / "written-by-model.txt"
    version = validate_upload(hostile.file_reading_and_writing_model(str(target)))
    assert_refused(version, "uses operations LineSight does not run: ReadFile, WriteFile")
    assert not target.exists()


@pytest.mark.slow
def test_savedmodel_of_garbage_bytes_is_refused(assert_refused):
    version = validate_upload(hostile.garbage_savedmodel())
    assert_refused(version, "saved_model.pb is not a valid SavedModel")


@pytest.mark.slow
def test_model_that_loops_forever_is_stopped_at_the_time_limit(assert_refused, limits):
    limits(SANDBOX_TIMEOUT_SECONDS=20)
    version = validate_upload(hostile.hanging_model())
    assert_refused(
        version,
        "did not finish within 20 s (LINESIGHT_SANDBOX_TIMEOUT_SECONDS) while running its "
        "warm-up inference",
    )
    assert 20 <= version.validation_seconds < 60


@pytest.mark.slow
def test_model_that_needs_too_much_memory_is_refused(assert_refused, limits):
    limits(SANDBOX_MEMORY_MB=3500)
    version = validate_upload(hostile.memory_hungry_model(gigabytes=6))
    assert_refused(version, "needs more memory than the sandbox allows (3,500 MB")


@pytest.mark.slow
def test_sandbox_orphaned_by_a_dead_worker_dies_too(tmp_path):
    """A worker killed mid-validation must not leave a model looping forever."""
    model_dir = tmp_path / "model"
    with zipfile.ZipFile(io.BytesIO(hostile.hanging_model())) as bundle:
        bundle.extractall(model_dir)  # noqa: S202 - built by this test
    (tmp_path / "out").mkdir()
    request = SandboxRequest(
        model_path=str(model_dir),
        model_format="savedmodel",
        out_dir=str(tmp_path / "out"),
        expected_outputs=3,
        timeout_seconds=600,
    )
    # A stand-in worker: starts the sandbox as the runner does and dies once it runs.
    report = tmp_path / "out" / "report.json"
    worker = (
        "import os, subprocess, sys, time;"
        "from pathlib import Path;"
        "from models_registry.validation.report import SandboxRequest;"
        f"request = SandboxRequest.read(Path({str(tmp_path / 'request.json')!r}));"
        "request.parent_pid = os.getpid();"
        f"request.write(Path({str(tmp_path / 'request.json')!r}));"
        "child = subprocess.Popen([sys.executable, '-P', '-m', "
        f"'models_registry.validation.sandbox', {str(tmp_path / 'request.json')!r}], "
        "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,"
        f"env={{**os.environ, 'PYTHONPATH': {str(PROJECT_ROOT)!r}}});"
        "print(child.pid, flush=True);"
        f"[time.sleep(0.1) for _ in range(300) if not os.path.exists({str(report)!r})];"
        "os._exit(0)"
    )
    request.write(tmp_path / "request.json")
    started = subprocess.run(
        [sys.executable, "-c", worker], capture_output=True, text=True, check=True
    )
    sandbox_pid = int(started.stdout.strip())
    assert report.exists()  # the sandbox was running when its worker died

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(sandbox_pid):
        time.sleep(0.2)
    orphaned = _alive(sandbox_pid)
    if orphaned:  # do not leave it looping when the test fails
        os.kill(sandbox_pid, signal.SIGKILL)
    assert not orphaned


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
