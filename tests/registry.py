"""Ready model versions for tests, made through the real upload and validation path.

``ready_version`` uploads a real SavedModel (the colour classifier unless a
Keras model is given) with ``version_upload`` and validates it with
``validate_version_now``. The sandbox really runs on each distinct artifact;
its result folder is kept for the test session and reused for the same
artifact (same sha256, labels and value scale), so only the storage and
database half repeats per test. The artifacts are built once per label set.
"""

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path

from django.core.files.base import ContentFile

from masterdata.models import DefectType
from models_registry.models import MLModel, ModelVersion
from models_registry.services import (
    label_mappings_update,
    model_create,
    version_update,
    version_upload,
)
from models_registry.validation import validate_version_now
from models_registry.validation.runner import SandboxResult, run_sandbox
from tests.tf_models import DEFAULT_LABELS, colour_classifier, savedmodel_zip

_results: dict[tuple, Path] = {}
_artifacts: dict[tuple, bytes] = {}
_keras_models: list = []  # keeps models alive so their id() stays theirs
_cache_root: Path | None = None


def _cache_dir() -> Path:
    global _cache_root
    if _cache_root is None:
        _cache_root = Path(tempfile.mkdtemp(prefix="linesight-test-sandbox-cache-"))
        atexit.register(shutil.rmtree, _cache_root, True)
    return _cache_root


def cached_sandbox(*, version: ModelVersion, work_dir: Path) -> SandboxResult:
    """``run_sandbox``, run once per artifact and result-affecting input for the session."""
    key = (version.sha256, tuple(version.labels), version.value_scale)
    if key not in _results:
        result = run_sandbox(version=version, work_dir=work_dir)
        kept = _cache_dir() / uuid.uuid4().hex
        shutil.copytree(result.folder, kept)
        _results[key] = kept
    folder = work_dir / f"cached-{uuid.uuid4().hex[:8]}"
    shutil.copytree(_results[key], folder)
    return SandboxResult.from_folder(folder)


def artifact_bytes(*, labels=DEFAULT_LABELS, keras_model=None) -> bytes:
    """The zipped SavedModel for these labels (colour classifier) or for ``keras_model``."""
    key = (tuple(labels), id(keras_model) if keras_model is not None else None)
    if key not in _artifacts:
        if keras_model is not None:
            _keras_models.append(keras_model)
        model = keras_model if keras_model is not None else colour_classifier(labels=labels)
        _artifacts[key] = savedmodel_zip(model)
    return _artifacts[key]


def default_mapping(labels) -> dict[str, str | None]:
    """The first label means no defect; every other label maps to a defect type of its name."""
    return {label: (None if index == 0 else label) for index, label in enumerate(labels)}


def ready_version(
    *,
    model_name: str = "bottle",
    labels=DEFAULT_LABELS,
    mapping: dict[str, str | None] | None = None,
    keras_model=None,
    uploaded_by=None,
    **preprocessing,
) -> ModelVersion:
    """A validated, ``ready`` and fully mapped version, as an engineer would leave it.

    ``model_name`` is reused when it exists (the next version number). ``mapping``
    maps label → defect type code (created when missing) or None for 'no
    defect'; labels it leaves out keep validation's automatic mapping. By
    default the first label means no defect and the others map to defect
    types named like them. ``preprocessing`` (resize_mode, value_scale, color_mode)
    is set after validation, as an engineer edits it in admin.
    """
    labels = list(labels)
    model = MLModel.objects.filter(name=model_name).first() or model_create(name=model_name)
    upload = ContentFile(artifact_bytes(labels=labels, keras_model=keras_model), name="model.zip")
    version = version_upload(model=model, artifact=upload, labels=labels, uploaded_by=uploaded_by)
    version = validate_version_now(version.pk, sandbox=cached_sandbox)
    if version.status != "ready":
        raise AssertionError(f"{version} did not validate: {version.status_reason}")

    mapping = default_mapping(labels) if mapping is None else mapping
    for code in {code for code in mapping.values() if code}:
        DefectType.objects.get_or_create(code=code, defaults={"name": code.replace("_", " ")})
    label_mappings_update(version=version, mapping=mapping)
    if preprocessing:
        version_update(version=version, **preprocessing)
    version.refresh_from_db()
    return version
