"""Training on real photographs, through the product's own services and jobs.

For each of ../shared/datasets/casting/train and magnetic_tile/train, in a
fresh data folder (its own SQLite database and media, removed at the end):

1. zips the class folders (every k-th file of each class with ``--limit``)
   and imports the zip with ``dataset_import_start`` + the import job;
2. maps the labels (``ok_front`` / ``free`` mean no defect, every other label
   a defect type of its name), splits grouped and seeded 70/15/15
   (``grouping=auto``: near-identical shots of one part stay on one side) and
   snapshots;
3. trains with ``training_start`` and the training job, exactly as the admin
   and the API do: the default recipe, no settings tuned per dataset (the
   recipe chooses from the data); then runs the evaluation job the run
   attached, on the held-out test split, through the serving runtime;
4. does the same for a naive baseline: the same network and data without
   what the recipe chooses (no augmentation, no class weights, constant
   learning rate, no early stopping, shuffled sampling, average pooling,
   ``--baseline-epochs`` epochs);
5. prints accuracy, macro-F1, per-class F1, the confusion matrix, training
   time (the process's wall and CPU time, and the job's wall time), the
   training process's peak RSS, the serving latency p50 per image and the
   machine's load average (the time budget is wall time: on a busy machine
   fewer epochs fit), for both.

    .venv/bin/python benchmarks/training.py [--sets casting,magnetic_tile] [--limit 600]
        [--settings '{"time_budget_seconds": 300}'] [--baseline-epochs 5] [--no-baseline]

Takes long on a shared 2-core machine at full size (each training is
budgeted 15 minutes by default); ``--limit`` and ``--settings`` make a
smaller run, and the output says what ran.
"""

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets"
SETS = {
    "casting": DATASETS / "casting" / "train",
    "magnetic_tile": DATASETS / "magnetic_tile" / "train",
}
NO_DEFECT = {"ok_front", "free"}
NAIVE = {
    "class_weights": "none",
    "sampling": "shuffle",
    "pooling": "avg",
    "flip": "none",
    "rotation": 0.0,
    "shift": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "lr_schedule": "constant",
    "learning_rate": 0.001,
    "patience": 100,
}


def zip_class_folders(source: Path, target: Path, limit: int | None) -> int:
    """``<label>/<file>`` entries; with ``limit``, about that many files, every k-th per class."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    step = max(1, len(files) // limit) if limit else 1
    chosen = files[::step]
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in chosen:
            archive.write(path, path.relative_to(source).as_posix())
    return len(chosen)


def setup_django(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LINESIGHT_SECRET_KEY": os.environ.get("BENCH_SECRET") or secrets.token_urlsafe(40),
            "LINESIGHT_DATA_DIR": str(data_dir),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "LINESIGHT_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def import_dataset(name: str, source: Path, work: Path, limit: int | None):
    from django.core.files import File

    from common.jobs import job_run
    from common.models import Job
    from masterdata.models import DefectType
    from models_registry.datasets.services import (
        dataset_create,
        dataset_import_start,
        dataset_labels_update,
        snapshot_create,
    )

    zip_path = work / f"{name}.zip"
    files = zip_class_folders(source, zip_path, limit)
    dataset = dataset_create(name=name)
    started = time.perf_counter()
    with zip_path.open("rb") as handle:
        job = dataset_import_start(dataset=dataset, archive=File(handle, name=zip_path.name))
    job_run(str(job.pk))
    job = Job.objects.get(pk=job.pk)
    assert job.state == "done", job.error
    print(f"  imported {files} files in {time.perf_counter() - started:.1f} s")
    mapping = {}
    for label in dataset.labels.all():
        if label.name in NO_DEFECT:
            mapping[label.name] = None
        else:
            DefectType.objects.get_or_create(code=label.name, defaults={"name": label.name})
            mapping[label.name] = label.name
    dataset_labels_update(dataset=dataset, mapping=mapping)
    split = {"shares": {"train": 0.7, "validation": 0.15, "test": 0.15}, "seed": 0}
    snapshot = snapshot_create(dataset=dataset, split={**split, "grouping": "auto"})
    print(f"  snapshot {snapshot.number}: {json.dumps(snapshot.counts)}")
    return snapshot


def train_and_evaluate(snapshot, model_name: str, settings: dict) -> dict:
    from common.jobs import job_run
    from models_registry.evaluation.models import Evaluation
    from models_registry.training.models import TrainingRun
    from models_registry.training.services import training_start

    run = training_start(snapshot=snapshot, model_name=model_name, settings=settings)
    started = time.perf_counter()
    state = job_run(str(run.job_id))
    wall = time.perf_counter() - started
    run = TrainingRun.objects.select_related("job", "version").get(pk=run.pk)
    if state != "done":
        return {"error": run.job.error, "wall_seconds": wall}
    job_run(str(run.evaluation.job_id))
    evaluation = Evaluation.objects.get(pk=run.evaluation_id)
    chosen = run.settings_chosen
    outcome = run.job.result
    return {
        "wall_seconds": wall,
        "training_seconds": run.training_seconds,
        "cpu_seconds": outcome.get("cpu_seconds"),
        "best_epoch": outcome.get("best_epoch"),
        "stopped_because": outcome.get("stopped_because"),
        "load_average": os.getloadavg()[1],  # the machine is shared: how busy it was
        "peak_rss_mb": run.peak_rss_mb,
        "epochs_run": len(run.history),
        "chosen": {k: v for k, v in chosen.items() if k not in ("why", "labels")},
        "metrics": evaluation.metrics,
        "runtime": run.version.serving_runtime,
    }


def show(title: str, figures: dict) -> None:
    print(f"  {title}")
    if "error" in figures:
        print(f"    FAILED after {figures['wall_seconds']:.0f} s: {figures['error']}")
        return
    metrics = figures["metrics"]
    print(
        f"    accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
        f"training {figures['training_seconds']:.0f} s wall, {figures['cpu_seconds'] or 0:.0f} s "
        f"CPU ({figures['epochs_run']} epochs, best {figures['best_epoch']}; "
        f"{figures['stopped_because']}), "
        f"job wall {figures['wall_seconds']:.0f} s, training process peak RSS "
        f"{figures['peak_rss_mb']:.0f} MB, serving ({figures['runtime']}) "
        f"p50 {metrics['latency_ms']['p50']:.2f} ms/image; load average (5 min) "
        f"{figures['load_average']:.1f} on {os.cpu_count()} cores"
    )
    per_label = "  ".join(f"{k} {v['f1']:.3f}" for k, v in metrics["per_label"].items())
    print(f"    per-class F1: {per_label}")
    confusion = metrics["confusion"]
    print(f"    confusion (rows truth, columns predicted; {', '.join(confusion['labels'])}):")
    for label, row in zip(confusion["labels"], confusion["matrix"], strict=True):
        print(f"      {label:>10} {' '.join(f'{n:5d}' for n in row)}")
    print(f"    settings: {json.dumps(figures['chosen'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="casting,magnetic_tile")
    parser.add_argument("--limit", type=int, default=None, help="about this many files per set")
    parser.add_argument("--settings", default="{}", help="overrides for both runs (JSON)")
    parser.add_argument("--baseline-epochs", type=int, default=5)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    overrides = json.loads(args.settings)
    print(
        f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, "
        f"limit: {args.limit or 'all'}, overrides: {overrides or 'none'}"
    )
    work = Path(tempfile.mkdtemp(prefix="linesight-training-bench-"))
    try:
        setup_django(work / "data")
        for name in args.sets.split(","):
            print(f"{name}:")
            snapshot = import_dataset(name.replace("_", "-"), SETS[name], work, args.limit)
            show("default recipe", train_and_evaluate(snapshot, f"{name}-trained", overrides))
            if not args.no_baseline:
                naive = {**NAIVE, "epochs": args.baseline_epochs, **overrides}
                show("naive baseline", train_and_evaluate(snapshot, f"{name}-naive", naive))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
