"""The worker's half of a validation run: unpack safely, run the sandbox, package the result.

Nothing here imports TensorFlow. Every file of a run lives in the fresh
``work_dir`` its caller creates and removes; the result folder inside it holds
what validation stores (a normalised SavedModel zip, the TFLite file) and the
sandbox's report.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from common.templatetags.linesight_format import ms
from models_registry.choices import ArtifactFormat, ServingRuntime
from models_registry.labels import parse_labels_text
from models_registry.models import ModelVersion
from models_registry.validation import archive
from models_registry.validation.errors import ModelRejected
from models_registry.validation.progress import ValidationProgress
from models_registry.validation.report import (
    CHECKED,
    LOADED,
    STARTED,
    VALIDATED,
    SandboxReport,
    SandboxRequest,
)

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COPY_CHUNK = 1024 * 1024
LOG_TAIL_BYTES = 8192
MIN_FILE_LIMIT_BYTES = 256 * 1024 * 1024
REPORT_POLL_SECONDS = 0.25  # how often the live progress reads the sandbox's report
# What the sandbox was doing after reaching each stage, for timeout and crash reasons.
NEXT_STEP = {
    STARTED: "reading and checking the model",
    CHECKED: "loading the model into TensorFlow",
    LOADED: "running its warm-up inference",
    VALIDATED: "converting it to TFLite",
}
MEMORY_HINTS = (
    "bad_alloc",
    "MemoryError",
    "Resource exhausted",
    "Cannot allocate memory",
    "OOM when allocating",
    "pthread_create() failed",  # thread stacks no longer fit in the address space
    "mmap error",
    "failed to map segment",
)


@dataclass
class SandboxResult:
    """What a successful sandbox run produced, ready to be stored on the version."""

    folder: Path
    labels: list[str]
    report: SandboxReport
    savedmodel_zip: Path
    tflite_file: Path | None
    serving_runtime: str
    serving_runtime_reason: str

    def save(self) -> None:
        """Describe the result in its folder, so the folder alone can be applied later."""
        (self.folder / "result.json").write_text(
            json.dumps(
                {
                    "labels": self.labels,
                    "report": asdict(self.report),
                    "tflite": self.tflite_file is not None,
                    "serving_runtime": self.serving_runtime,
                    "serving_runtime_reason": self.serving_runtime_reason,
                }
            )
        )

    @classmethod
    def from_folder(cls, folder: Path) -> "SandboxResult":
        data = json.loads((folder / "result.json").read_text())
        return cls(
            folder=folder,
            labels=data["labels"],
            report=SandboxReport.from_dict(data["report"]),
            savedmodel_zip=folder / "savedmodel.zip",
            tflite_file=folder / "model.tflite" if data["tflite"] else None,
            serving_runtime=data["serving_runtime"],
            serving_runtime_reason=data["serving_runtime_reason"],
        )


def archive_limits() -> archive.ArchiveLimits:
    return archive.ArchiveLimits(
        max_entries=settings.LINESIGHT["ARCHIVE_MAX_ENTRIES"],
        max_unpacked_bytes=settings.LINESIGHT["ARCHIVE_MAX_UNPACKED_BYTES"],
        max_ratio=settings.LINESIGHT["ARCHIVE_MAX_RATIO"],
    )


def copy_artifact(version: ModelVersion, target: Path) -> Path:
    """Copy the stored artifact (filesystem or S3) to ``target``, checking size and checksum."""
    limit = settings.LINESIGHT["MAX_ARTIFACT_BYTES"]
    digest = hashlib.sha256()
    size = 0
    try:
        source = version.artifact.storage.open(version.artifact.name, "rb")
    except OSError as error:
        raise ModelRejected(
            f"The uploaded artifact cannot be read from storage ({error}); upload the model again."
        ) from None
    with source, open(target, "xb") as sink:
        for chunk in iter(lambda: source.read(COPY_CHUNK), b""):
            size += len(chunk)
            if size > limit:
                raise ModelRejected(
                    f"The artifact is over {limit:,} bytes (LINESIGHT_MAX_ARTIFACT_BYTES)."
                )
            digest.update(chunk)
            sink.write(chunk)
    if version.sha256 and digest.hexdigest() != version.sha256:
        raise ModelRejected(
            "The stored artifact no longer matches the checksum taken at upload; "
            "upload the model again."
        )
    return target


def resolve_labels(version: ModelVersion, labels_text: str | None) -> list[str]:
    if version.labels:
        return list(version.labels)
    if labels_text is None:
        where = (
            "a .keras file carries none"
            if version.artifact_format == ArtifactFormat.KERAS
            else "the archive has no labels.txt"
        )
        raise ModelRejected(
            f"The version has no labels: none were given at upload and {where}. Give the "
            "labels (one per line, in output order) and validate again."
        )
    try:
        return parse_labels_text(labels_text)
    except ValidationError as error:
        messages = [m for ms in error.message_dict.values() for m in ms]
        raise ModelRejected(f"labels.txt: {' '.join(messages)}") from None


def prepare_model(version: ModelVersion, work_dir: Path) -> tuple[Path, str, list[str], int]:
    """Unpack or inspect the artifact; the model's path, its format, labels and size in bytes."""
    limits = archive_limits()
    upload_dir = work_dir / "upload"
    upload_dir.mkdir()
    if version.artifact_format == ArtifactFormat.KERAS:
        path = copy_artifact(version, upload_dir / "model.keras")
        archive.inspect_keras_file(path, limits)
        return path, "keras", resolve_labels(version, None), path.stat().st_size

    is_zip = version.artifact_format == ArtifactFormat.SAVEDMODEL_ZIP
    path = copy_artifact(version, upload_dir / ("artifact.zip" if is_zip else "artifact.tar.gz"))
    root = work_dir / "unpacked"
    root.mkdir()
    if is_zip:
        archive.unpack_zip(path, root, limits)
    else:
        archive.unpack_tar_gz(path, root, limits)
    path.unlink()  # the unpacked copy is all the sandbox needs
    model_dir = archive.find_savedmodel(root)
    labels = resolve_labels(version, archive.read_labels_file(root, model_dir))
    if archive.keras_metadata_has_lambda(model_dir):
        raise ModelRejected(
            "The SavedModel's Keras metadata describes a Lambda layer (Python code), which "
            "LineSight does not run. Replace it with built-in layers and export again."
        )
    size = sum(path.stat().st_size for path in archive.savedmodel_files(model_dir))
    return model_dir, "savedmodel", labels, size


def sandbox_env(work_dir: Path) -> dict[str, str]:
    """A minimal environment: no database URL, secret key or cloud credentials for the model."""
    home = work_dir / "home"
    tmp = work_dir / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": "tensorflow",
        "CUDA_VISIBLE_DEVICES": "",
    }


def log_tail(path: Path) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as log:
        log.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
        return log.read().decode("utf-8", "replace")


def wait_watching(
    process: subprocess.Popen, timeout: float, report_path: Path, progress: ValidationProgress
) -> int:
    """Wait for the sandbox, handing its report to ``progress`` as it moves from step to step."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return process.wait(
                timeout=min(REPORT_POLL_SECONDS, max(0.0, deadline - time.monotonic()))
            )
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
        report = None
        # Not there yet, or unreadable: the live progress is only a view, the run goes on.
        with contextlib.suppress(OSError, ValueError, TypeError):
            report = SandboxReport.read(report_path)
        if report is not None:
            progress.sandbox(report)  # may raise JobLost: the process group is killed then


def run_process(
    request: SandboxRequest, work_dir: Path, progress: ValidationProgress | None = None
) -> tuple[SandboxReport, str]:
    """Run the sandbox under its limits; its report and, if it did not finish, why."""
    timeout = request.timeout_seconds
    request_path = work_dir / "request.json"
    request.write(request_path)
    log_path = work_dir / "sandbox.log"
    command = [sys.executable, "-P", "-m", "models_registry.validation.sandbox", str(request_path)]
    failure = ""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=work_dir,
            env=sandbox_env(work_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )
        report_path = Path(request.out_dir) / "report.json"
        try:
            if progress is None:
                returncode = process.wait(timeout=timeout)
            else:
                returncode = wait_watching(process, timeout, report_path, progress)
        except subprocess.TimeoutExpired:
            failure = f"did not finish within {timeout} s (LINESIGHT_SANDBOX_TIMEOUT_SECONDS)"
            returncode = None
        finally:
            if process.poll() is None:  # timed out, or the worker is being stopped
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if returncode:
        tail = log_tail(log_path)
        logger.warning("Validation sandbox exited with %s; log tail:\n%s", returncode, tail)
        failure = exit_failure(returncode, tail, request)
    report = SandboxReport.read(report_path) if report_path.exists() else SandboxReport()
    if progress is not None:
        progress.sandbox(report, ended=True)
    return report, failure


def exit_failure(returncode: int, tail: str, request: SandboxRequest) -> str:
    """What a sandbox that exited abnormally did, for the reason shown to the engineer."""
    if returncode == -signal.SIGXFSZ:
        return f"wrote a file over {request.max_file_bytes:,} bytes"
    if returncode == -signal.SIGXCPU:
        return "used more CPU time than the sandbox allows"
    if returncode == -signal.SIGKILL or any(hint in tail for hint in MEMORY_HINTS):
        return f"ran out of memory (limit {request.memory_mb:,} MB, LINESIGHT_SANDBOX_MEMORY_MB)"
    if returncode < 0:
        return f"crashed TensorFlow ({signal.Signals(-returncode).name})"
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    return f"stopped the sandbox with status {returncode} ({last.strip()[:200]})"


def serving_choice(report: SandboxReport) -> tuple[str, str]:
    """TFLite when it converts and agrees with the SavedModel, else the SavedModel; and why."""
    check = report.tflite
    if check.parity_passed:
        speed = ""
        if check.latency_ms is not None and report.warmup_latency_ms is not None:
            speed = (
                f"; {ms(check.latency_ms)} per frame against "
                f"{ms(report.warmup_latency_ms)} for the SavedModel"
            )
        return ServingRuntime.TFLITE, (
            f"TFLite parity passed on {check.samples} generated frames: same top-1 on every "
            f"frame, max |diff| {check.max_abs_diff:.2g} ≤ {check.tolerance:g}{speed}."
        )
    if check.error:
        return ServingRuntime.SAVEDMODEL, f"{check.error} Serving the SavedModel."
    problems = []
    if check.top1_mismatches:
        problems.append(f"top-1 differs on {check.top1_mismatches}/{check.samples} frames")
    if check.max_abs_diff is not None and check.max_abs_diff > check.tolerance:
        problems.append(f"max |diff| {check.max_abs_diff:.2g} > {check.tolerance:g}")
    detail = "; ".join(problems) or "not checked"
    return ServingRuntime.SAVEDMODEL, f"TFLite parity: {detail}. Serving the SavedModel."


def zip_savedmodel(model_dir: Path, target: Path) -> Path:
    """The serving SavedModel as a zip with saved_model.pb at its root."""
    with zipfile.ZipFile(target, "x", zipfile.ZIP_DEFLATED, compresslevel=1) as bundle:
        for path in archive.savedmodel_files(model_dir):
            bundle.write(path, path.relative_to(model_dir).as_posix())
    return target


def sandbox_request(
    version: ModelVersion,
    model_path: Path,
    model_format: str,
    outputs: int,
    model_bytes: int,
    out_dir: Path,
) -> SandboxRequest:
    """What the sandbox process is asked to do, under the settings' limits."""
    return SandboxRequest(
        model_path=str(model_path),
        model_format=model_format,
        out_dir=str(out_dir),
        expected_outputs=outputs,
        value_scale=version.value_scale,
        threads=settings.LINESIGHT["INFERENCE_THREADS"],
        memory_mb=settings.LINESIGHT["SANDBOX_MEMORY_MB"],
        # The sandbox writes an export and a TFLite file about the model's size,
        # and its log: anything much larger is a model misbehaving.
        max_file_bytes=max(MIN_FILE_LIMIT_BYTES, 3 * model_bytes),
        timeout_seconds=settings.LINESIGHT["SANDBOX_TIMEOUT_SECONDS"],
        parent_pid=os.getpid(),
        parity_tolerance=settings.LINESIGHT["TFLITE_PARITY_TOLERANCE"],
    )


def run_sandbox(
    *, version: ModelVersion, work_dir: Path, progress: ValidationProgress | None = None
) -> SandboxResult:
    """Check and measure ``version``'s artifact in ``work_dir``; ModelRejected if unusable.

    ``progress``, when given, follows each step live (the validation job's page).
    """
    if progress is not None:
        progress.start("unpack")
    model_path, model_format, labels, model_bytes = prepare_model(version, work_dir)
    if progress is not None:
        progress.finish("unpack")
    out_dir = work_dir / "sandbox"
    out_dir.mkdir()
    request = sandbox_request(version, model_path, model_format, len(labels), model_bytes, out_dir)
    report, failure = run_process(request, work_dir, progress)
    if report.invalid_reason:
        raise ModelRejected(report.invalid_reason)
    if not report.reached(VALIDATED):
        step = NEXT_STEP.get(report.stage, "validating it")
        raise ModelRejected(
            f"The model {failure or 'stopped the sandbox without a result'} while {step}; "
            "the sandbox was stopped and nothing was kept."
        )
    if failure:  # the model is sound; only the fast path did not finish
        report.tflite.error = f"TFLite conversion {failure}."
        report.tflite.converted = report.tflite.converted and bool(report.tflite_file)

    if progress is not None:
        progress.start("store")  # ends once the service has stored the files
    folder = work_dir / "result"
    folder.mkdir()
    savedmodel_zip = zip_savedmodel(Path(report.savedmodel_dir), folder / "savedmodel.zip")
    tflite_file = None
    if report.tflite.converted and report.tflite_file:
        tflite_file = folder / "model.tflite"
        shutil.move(report.tflite_file, tflite_file)
    runtime, reason = serving_choice(report)
    logger.info("Sandbox of %s took %s", version, report.timings)
    result = SandboxResult(
        folder=folder,
        labels=labels,
        report=report,
        savedmodel_zip=savedmodel_zip,
        tflite_file=tflite_file,
        serving_runtime=runtime,
        serving_runtime_reason=reason,
    )
    result.save()
    return result
