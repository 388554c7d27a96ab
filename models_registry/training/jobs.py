"""The training job: prepare the snapshot's images, train in a limited process, register.

1. Every train and validation image goes through common.preprocessing with
   the preprocessing the new version will declare, into uint8 arrays on disk
   (memory-mapped: the worker never holds the images).
2. A separate process (``worker``) learns from them under memory, CPU-time
   and wall-time limits, at a lower CPU priority; each epoch lands in the
   run's history and the job's progress. Cancelling the job kills it within
   about a second.
3. The exported SavedModel, zipped with labels.txt, goes through
   ``version_upload`` and validation like any user's model. Only a ready
   version stays; anything else is removed with its files.
Everything on disk lives in one folder per run, removed whatever happens.
"""

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from numpy.lib.format import open_memmap

from common.jobs import JobFailed, JobLost, job_progress
from common.models import Job, JobState
from common.preprocessing import DATASET_FORMATS, FrameError, model_input, open_frame
from models_registry.datasets.models import SnapshotImage
from models_registry.training import registration, thresholds
from models_registry.training.models import TrainingRun
from models_registry.training.plan import preprocessing_for
from models_registry.training.process import TrainingStopped, exit_reason, follow, started
from models_registry.training.worker import TrainingRequest
from models_registry.validation.errors import ModelRejected
from models_registry.validation.runner import copy_artifact

logger = logging.getLogger(__name__)

PREPARE_SHARE, TRAIN_SHARE = 0.1, 0.8  # of the progress bar; registration takes the rest
HEARTBEAT_SECONDS = 30
WORK_PREFIX = "linesight-training-"


def limits() -> dict:
    """Limits of the training process (settings.LINESIGHT may set them)."""
    conf = settings.LINESIGHT
    return {
        "memory_mb": conf["TRAINING_MEMORY_MB"],
        "timeout_seconds": conf["TRAINING_TIMEOUT_SECONDS"],
        "threads": conf["TRAINING_THREADS"],
        "nice": conf["TRAINING_NICE"],
    }


def work_root() -> str | None:
    return settings.LINESIGHT.get("SANDBOX_WORK_DIR")


def run_training(job: Job) -> dict:
    """Run the training named in the job's payload; a re-run starts from scratch."""
    run = TrainingRun.objects.select_related("snapshot__dataset", "parent").get(
        pk=job.payload["training_run"]
    )
    if run.version_id:  # a previous attempt died half-way through registering
        registration.unregister(run)
    TrainingRun.objects.filter(pk=run.pk).update(
        history=[], training_seconds=None, peak_rss_mb=None
    )
    run.history = []
    work_dir = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{job.pk}-", dir=work_root()))
    try:
        labels = run.settings_chosen["labels"]
        _prepare(job, run, work_dir / "data", labels)
        outcome = _train(job, run, work_dir, labels)
        version = registration.register(job, run, work_dir / "out", outcome)
        job_progress(job, 0.97, "Suggesting per-defect thresholds on the validation split")
        thresholds.suggest_and_store(
            run, version, work_dir / "data", registration.dataset_mapping(run)
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    evaluation = registration.attach_evaluation(run, version)
    return {
        "training_run": run.pk,
        "version": {"model": version.model.name, "version": version.number},
        "evaluation": evaluation.pk if evaluation else None,
        **outcome,
    }


def _image_array(storage, name: str, prep) -> np.ndarray:
    with storage.open(name, "rb") as handle:
        data = handle.read()
    frame = open_frame(
        data, max_pixels=settings.LINESIGHT["MAX_FRAME_PIXELS"], formats=DATASET_FORMATS
    )
    return model_input(frame, prep)[0]  # serving's own steps, so serving sees what training saw


def _prepare(job: Job, run: TrainingRun, data_dir: Path, labels: list[str]) -> None:
    """Each train and validation image as the version's input, into arrays on disk."""
    prep = preprocessing_for(run.settings_chosen)
    index = {label: i for i, label in enumerate(labels)}
    data_dir.mkdir()
    splits = {"train": "train", "val": "validation"}
    total = SnapshotImage.objects.filter(snapshot=run.snapshot, split__in=splits.values()).count()
    done = 0
    for short, split in splits.items():
        items = SnapshotImage.objects.filter(snapshot=run.snapshot, split=split).order_by("id")
        count = items.count()
        shape = (count, prep.height, prep.width, prep.channels)
        pixels = open_memmap(data_dir / f"{short}_x.npy", mode="w+", dtype=np.uint8, shape=shape)
        truth = np.zeros(count, dtype=np.int32)
        rows = items.select_related("image", "label").iterator(chunk_size=500)
        for position, item in enumerate(rows):
            try:
                pixels[position] = _image_array(item.image.file.storage, item.image.file.name, prep)
            except (FrameError, OSError) as exc:
                raise JobFailed(
                    f"Image {item.image.original_name or item.image.sha256[:12]} could not be "
                    f"read: {exc}"
                ) from None
            truth[position] = index[item.label.name]
            done += 1
            job_progress(job, PREPARE_SHARE * done / total, f"Preparing images {done}/{total}")
        pixels.flush()
        del pixels
        np.save(data_dir / f"{short}_y.npy", truth)


def _request(run: TrainingRun, work_dir: Path, labels: list[str]) -> TrainingRequest:
    conf = limits()
    out_dir = work_dir / "out"
    out_dir.mkdir()
    return TrainingRequest(
        data_dir=str(work_dir / "data"),
        out_dir=str(out_dir),
        settings=run.settings_chosen,
        labels=labels,
        threads=conf["threads"],
        nice=conf["nice"],
        memory_mb=conf["memory_mb"],
        timeout_seconds=int(hard_timeout(run.settings_chosen)),
        parent_pid=os.getpid(),
        base_path=_copy_base(run, work_dir),
    )


def _copy_base(run: TrainingRun, work_dir: Path) -> str:
    """The fine-tuning base's .keras file, copied and checked against its upload checksum."""
    if run.parent is None:
        return ""
    try:
        return str(copy_artifact(run.parent, work_dir / "base.keras"))
    except ModelRejected as error:
        raise JobFailed(f"The base version cannot be used: {error.reason}") from None


def hard_timeout(chosen: dict) -> float:
    """The wall time after which the process is killed: the budget, plus room to start
    TensorFlow, finish an epoch and export; never over TRAINING_TIMEOUT_SECONDS."""
    timeout = chosen["time_budget_seconds"] * 1.5 + 300
    cap = limits()["timeout_seconds"]
    return min(timeout, float(cap)) if cap else timeout


def _still_mine(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, attempt=job.attempt, state=JobState.RUNNING).exists()


class EpochReporter:
    """Turns the process's events into the run's history and the job's progress."""

    def __init__(self, job: Job, run: TrainingRun):
        self.job, self.run = job, run
        self.started = time.monotonic()
        self.last_write = 0.0
        self.message = "Starting the training process"
        self.outcome: dict = {}

    def on_event(self, event: dict) -> None:
        kind = event.pop("event")
        if kind == "epoch":
            self.run.history.append(event)
            TrainingRun.objects.filter(pk=self.run.pk).update(history=self.run.history)
            self.epoch(event)
        elif kind == "done":
            self.outcome = event

    def epoch(self, event: dict) -> None:
        epoch, epochs = event["epoch"], event["epochs"]
        elapsed = time.monotonic() - self.started
        per_epoch = event["elapsed_seconds"] / epoch
        budget_left = self.run.settings_chosen["time_budget_seconds"] - event["elapsed_seconds"]
        left = max(0.0, min(per_epoch * (epochs - epoch), budget_left))
        self.message = (
            f"Epoch {epoch}/{epochs}: loss {event['loss']:.3f}, validation macro-F1 "
            f"{event['val_macro_f1']:.3f}; {elapsed:.0f} s elapsed, at most about "
            f"{left:.0f} s left"
        )
        self.report(PREPARE_SHARE + TRAIN_SHARE * epoch / epochs)

    def report(self, fraction: float | None = None) -> None:
        fraction = self.job.progress if fraction is None else fraction
        job_progress(self.job, fraction, self.message, force=True)
        self.last_write = time.monotonic()

    def should_stop(self) -> bool:
        if time.monotonic() - self.last_write > HEARTBEAT_SECONDS:
            try:
                self.report()
            except JobLost:
                return True
        return not _still_mine(self.job)


def _train(job: Job, run: TrainingRun, work_dir: Path, labels: list[str]) -> dict:
    """Run the training process to its end; the outcome it reported (best epoch, time, RSS)."""
    request = _request(run, work_dir, labels)
    reporter = EpochReporter(job, run)
    reporter.report(PREPARE_SHARE)
    with started(request, work_dir) as process:
        try:
            follow(
                process,
                on_event=reporter.on_event,
                should_stop=reporter.should_stop,
                timeout_seconds=request.timeout_seconds,
            )
        except TrainingStopped as stop:
            raise JobFailed(f"{stop} Nothing was registered.") from None
        process.wait()
    if not _still_mine(job):
        raise JobLost(str(job.pk))  # cancelled: the process is gone, the folder goes next
    result = Path(request.out_dir) / "savedmodel" / "saved_model.pb"
    if process.returncode != 0 or not reporter.outcome or not result.exists():
        raise JobFailed(exit_reason(process.returncode, work_dir, request.memory_mb))
    TrainingRun.objects.filter(pk=run.pk).update(
        training_seconds=reporter.outcome["training_seconds"],
        peak_rss_mb=reporter.outcome["peak_rss_mb"],
    )
    return reporter.outcome


def cleanup_training(job: Job) -> None:
    """The sweep failed this job (its worker died): remove its folder and any half-registered
    version (the process died with the worker)."""
    root = Path(work_root() or tempfile.gettempdir())
    for folder in root.glob(f"{WORK_PREFIX}{job.pk}-*"):
        shutil.rmtree(folder, ignore_errors=True)
    run = TrainingRun.objects.filter(job=job).first()
    if run is not None and run.version_id:
        registration.unregister(run)
