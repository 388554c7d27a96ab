"""Validation of an uploaded version, in two halves: run the sandbox, then apply its result.

``validate_version_now`` marks the version ``validating``, lets a sandbox
runner turn the artifact into a result folder (or a rejection), and applies
that result in one transaction. Whatever happens, the version ends ``ready``
or ``invalid`` and the run's temporary folder is removed.
"""

import hashlib
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Protocol

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage
from django.db import transaction
from django.utils import timezone

from common.files import delete_on_error
from common.jobs import JobLost
from masterdata.models import DefectType
from models_registry.choices import ColorMode, ValueScale, VersionStatus
from models_registry.labels import mapping_revision_bump
from models_registry.models import LabelMapping, ModelVersion
from models_registry.validation.errors import ModelRejected
from models_registry.validation.progress import ValidationProgress
from models_registry.validation.runner import SandboxResult, run_sandbox

logger = logging.getLogger(__name__)

# Labels that mean a good part, compared lower-cased with '-' and ' ' as '_'.
NO_DEFECT_LABELS = {"ok", "okay", "good", "pass", "passed", "no_defect", "nodefect", "normal"}


class SandboxRunner(Protocol):
    def __call__(self, *, version: ModelVersion, work_dir: Path) -> SandboxResult: ...


def validate_version_now(
    version_id: int,
    *,
    sandbox: SandboxRunner = run_sandbox,
    progress: ValidationProgress | None = None,
) -> ModelVersion:
    """Validate a version now (the task worker calls this); it ends ``ready`` or ``invalid``.

    Starts over whatever the version's status, so a run killed half-way is
    repaired by running it again. ``progress`` follows the steps live (the
    validation job passes one; the sandbox must then accept it).
    """
    started = time.monotonic()
    version = _mark_validating(version_id)
    work_dir = Path(
        tempfile.mkdtemp(prefix="linesight-validation-", dir=settings.LINESIGHT["SANDBOX_WORK_DIR"])
    )
    watch = {} if progress is None else {"progress": progress}
    try:
        try:
            result = sandbox(version=version, work_dir=work_dir, **watch)
        except ModelRejected as rejection:
            if progress is not None:
                progress.fail()
            return _mark_invalid(version_id, reason=rejection.reason, started=started)
        version = validation_apply(version=version, result=result, started=started)
        if progress is not None:
            progress.finish("store")
            progress.end()
        return version
    except JobLost:
        reason = "Validation was stopped (cancelled, or its worker went silent); validate again."
        _mark_invalid(version_id, reason=reason, started=started)
        raise
    except Exception as error:
        logger.exception("Validation of version %s stopped on an unexpected error", version_id)
        _mark_invalid(
            version_id,
            reason=(
                f"Validation stopped on an unexpected error ({type(error).__name__}: "
                f"{str(error)[:200]}). Validate again; if it persists, see the worker's log."
            ),
            started=started,
        )
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _mark_validating(version_id: int) -> ModelVersion:
    with transaction.atomic():
        version = (
            # NO KEY UPDATE: a frame's INSERT takes KEY SHARE on its version row (the
            # foreign key); plain FOR UPDATE would queue behind every frame in flight.
            ModelVersion.objects.select_for_update(no_key=True)
            .select_related("model")
            .get(pk=version_id)
        )
        version.status = VersionStatus.VALIDATING
        version.status_reason = ""
        version.save(update_fields=["status", "status_reason"])
    return version


def _mark_invalid(version_id: int, *, reason: str, started: float) -> ModelVersion:
    """Invalid with the reason. Files a previous run stored stay: a deployment may use them."""
    ModelVersion.objects.filter(pk=version_id).update(
        status=VersionStatus.INVALID,
        status_reason=reason,
        validated_at=timezone.now(),
        validation_seconds=time.monotonic() - started,
    )
    return ModelVersion.objects.get(pk=version_id)


def validation_abandon(*, version_id: int, reason: str) -> bool:
    """Fail a version left ``validating`` by a run that will never end; False if it moved on.

    Conditional, so a validation that finishes meanwhile keeps its result.
    """
    return bool(
        ModelVersion.objects.filter(pk=version_id, status=VersionStatus.VALIDATING).update(
            status=VersionStatus.INVALID, status_reason=reason, validated_at=timezone.now()
        )
    )


def _store(storage: Storage, name: str, path: Path) -> tuple[str, str]:
    """Save a result file; its stored name and SHA-256 (devices verify their downloads)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
        handle.seek(0)
        return storage.save(name, File(handle, name=path.name)), digest.hexdigest()


def validation_apply(
    *, version: ModelVersion, result: SandboxResult, started: float
) -> ModelVersion:
    """Store the result's artifacts and write the version ``ready``, all or nothing."""
    storage = version.serving_savedmodel.storage
    folder = f"{PurePosixPath(version.artifact.name).parent}/serving-{uuid.uuid4().hex[:12]}"
    savedmodel_name, savedmodel_sha256 = _store(
        storage, f"{folder}/savedmodel.zip", result.savedmodel_zip
    )
    with delete_on_error(storage, savedmodel_name):
        tflite_name, tflite_sha256 = (
            _store(storage, f"{folder}/model.tflite", result.tflite_file)
            if result.tflite_file
            else ("", "")
        )
        with delete_on_error(storage, tflite_name), transaction.atomic():
            locked = ModelVersion.objects.select_for_update(no_key=True).get(pk=version.pk)
            previous_files = [locked.serving_savedmodel.name, locked.tflite_artifact.name]
            _fill_version(locked, result)
            locked.serving_savedmodel = savedmodel_name
            locked.serving_savedmodel_sha256 = savedmodel_sha256
            locked.tflite_artifact = tflite_name
            locked.tflite_sha256 = tflite_sha256
            locked.status = VersionStatus.READY
            locked.status_reason = ""
            locked.validated_at = timezone.now()
            locked.validation_seconds = time.monotonic() - started
            locked.save()
            if label_mappings_sync(version=locked, labels=result.labels):
                mapping_revision_bump(version=locked)
            stale = [name for name in previous_files if name]
            transaction.on_commit(lambda: _delete_files(storage, stale))
    return locked


def _fill_version(version: ModelVersion, result: SandboxResult) -> None:
    report = result.report
    signature = report.signature
    version.labels = list(result.labels)
    version.signature_name = signature.signature_name
    version.input_name = signature.input_name
    version.output_name = signature.output_name
    version.input_height = signature.input_height
    version.input_width = signature.input_width
    version.input_channels = signature.input_channels
    version.input_dtype = signature.input_dtype
    version.outputs_probabilities = report.outputs_probabilities
    version.warmup_latency_ms = report.warmup_latency_ms
    version.tflite_latency_ms = report.tflite.latency_ms if result.tflite_file else None
    version.tflite_max_abs_diff = report.tflite.max_abs_diff if result.tflite_file else None
    version.serving_runtime = result.serving_runtime
    version.serving_runtime_reason = result.serving_runtime_reason
    # Preprocessing: what the engineer declared (at upload or since) stays, except
    # where the signature leaves no choice; undeclared, the model's defaults (stretch,
    # 0..1, RGB) are what a float RGB signature wants.
    if signature.input_dtype == "uint8":
        version.value_scale = ValueScale.RAW
    if signature.input_channels == 1:
        version.color_mode = ColorMode.GRAYSCALE


def _delete_files(storage: Storage, names: Iterable[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        except OSError:
            logger.warning("Could not delete the replaced serving file %s", name, exc_info=True)


def _normalised(label: str) -> str:
    return label.strip().lower().replace("-", "_").replace(" ", "_")


def _mapping_rows(version: ModelVersion) -> list[tuple]:
    return list(
        version.mappings.order_by("index").values_list("index", "label", "defect_type", "no_defect")
    )


def label_mappings_sync(*, version: ModelVersion, labels: list[str]) -> bool:
    """One mapping row per label in output order, keeping what the engineer mapped before.

    New or unmapped labels are mapped automatically: 'ok', 'good', 'pass'...
    mean no defect; a label equal to a defect type's code (any case) maps to
    it; anything else stays unmapped for the engineer. True when rows that
    existed before changed (a first validation only creates them).
    """
    before = _mapping_rows(version)
    existing = {row.label: row for row in version.mappings.all()}
    defect_types = {
        defect.code.lower(): defect for defect in DefectType.objects.filter(archived=False)
    }
    wanted = list(enumerate(labels))
    stale = [row.pk for row in existing.values() if (row.index, row.label) not in wanted]
    version.mappings.filter(pk__in=stale).delete()
    for index, label in wanted:
        row = existing.get(label)
        if row is None or not row.is_mapped:
            defect = None
            no_defect = _normalised(label) in NO_DEFECT_LABELS
            if not no_defect:
                defect = defect_types.get(label.lower())
        else:
            defect, no_defect = row.defect_type, row.no_defect
        if row is not None and row.pk not in stale:
            row.defect_type, row.no_defect = defect, no_defect
            row.save(update_fields=["defect_type", "no_defect"])
        else:
            LabelMapping.objects.create(
                version=version, index=index, label=label, defect_type=defect, no_defect=no_defect
            )
    return bool(before) and before != _mapping_rows(version)
