"""Datasets and evaluation on real photographs, through the product's services and jobs.

On ../shared/datasets/casting/train (300x300 greyscale JPEG) and
../shared/datasets/magnetic_tile/train (6 classes, varied sizes), in a fresh
data folder (its own SQLite database and media, removed at the end):

1. zips the class folders into a temporary folder (never into the project);
2. imports each zip with ``dataset_import_start`` and runs the import job in a
   child process (the importing worker), printing import time, images/s and
   that process's peak RSS; ``--rss-check`` imports a quarter of casting too,
   to show whether the peak grows with the number of images;
3. times the admin thumbnail grid page (the test client, a superuser), and the
   48 thumbnails of that page;
4. splits casting (grouped, seeded) and snapshots it; uploads and validates a
   demo-size CNN (96x96, random weights) and a MobileNetV2 224x224
   (``weights=None``), both exported as SavedModels and validated as a user's
   upload; evaluates each on the test split as a job and compares images/s
   with a bare loop over the same files through the same classifier and
   preprocessing (no database, no storage, no job).

Medians of ``--runs``. ``--limit`` takes every k-th file of each class so the
machine's load stays bearable.

    .venv/bin/python benchmarks/datasets_evaluation.py [--limit 2000] [--runs 3]
        [--rss-check] [--no-mobilenet] [--profile]
"""

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
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
    "magnetic-tile": DATASETS / "magnetic_tile" / "train",
}

BUILD = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
kind, classes, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "mobilenet":
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(224, 224, 3), classes=classes, classifier_activation="softmax"
    )
else:
    from demo.training import build_model
    model = build_model(96, classes)
model.export(target, verbose=False)
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def zip_class_folders(source: Path, target: Path, limit: int | None) -> tuple[Path, int]:
    """``<label>/<file>`` entries, stored (JPEGs do not compress); every k-th file if limited."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    step = max(1, len(files) // limit) if limit else 1
    chosen = files[::step][:limit] if limit else files
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in chosen:
            archive.write(path, path.relative_to(source).as_posix())
    return target, len(chosen)


def setup_django(data_dir: Path, migrate: bool) -> None:
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
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def child_import(data_dir: Path, name: str, zip_path: Path) -> None:
    """The importing worker: store the upload, run the import job here, report as JSON."""
    setup_django(data_dir, migrate=False)
    from django.core.files import File

    from common.jobs import job_run
    from common.models import Job
    from models_registry.datasets.services import dataset_create, dataset_import_start

    before = peak_rss_mb()
    dataset = dataset_create(name=name)
    started = time.perf_counter()
    with zip_path.open("rb") as handle:
        job = dataset_import_start(dataset=dataset, archive=File(handle, name=zip_path.name))
    stored = time.perf_counter()
    job_run(str(job.pk))
    finished = time.perf_counter()
    job = Job.objects.get(pk=job.pk)
    result = job.result or {}
    print(
        json.dumps(
            {
                "state": job.state,
                "error": job.error,
                "imported": result.get("imported", 0),
                "store_seconds": stored - started,
                "job_seconds": finished - stored,
                "rss_before_mb": before,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def run_import(data_dir: Path, name: str, zip_path: Path) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child-import", str(data_dir), name, str(zip_path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "BENCH_SECRET": os.environ["LINESIGHT_SECRET_KEY"]},
    )
    report = json.loads(output.stdout.strip().splitlines()[-1])
    if report["state"] != "done":
        raise SystemExit(f"import of {name} {report['state']}: {report['error']}")
    seconds = report["store_seconds"] + report["job_seconds"]
    print(
        f"import {name}: {report['imported']} images in {seconds:.1f} s "
        f"(upload stored {report['store_seconds']:.1f} s, job {report['job_seconds']:.1f} s) = "
        f"{report['imported'] / seconds:.0f} images/s; worker peak RSS "
        f"{report['peak_rss_mb']:.0f} MB (after start-up {report['rss_before_mb']:.0f} MB)"
    )
    return report


def time_grid(name: str, runs: int) -> None:
    """The admin grid page of a dataset, and its page of thumbnails, through the test client."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from models_registry.datasets.models import Dataset

    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    dataset = Dataset.objects.get(name=name)
    url = reverse("admin:models_registry_dataset_images", args=[dataset.pk])
    pages, thumbs = [], []
    for run in range(runs):
        started = time.perf_counter()
        response = client.get(url, {"page": run + 1})
        pages.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        ids = list(
            dataset.images.order_by("label__name", "id").values_list("pk", flat=True)[
                run * 48 : run * 48 + 48
            ]
        )
        started = time.perf_counter()
        for pk in ids:
            thumb = client.get(
                reverse("admin:models_registry_dataset_thumbnail", args=[dataset.pk, pk])
            )
            assert thumb.status_code == 200
            _ = b"".join(thumb.streaming_content) if thumb.streaming else thumb.content
        thumbs.append(time.perf_counter() - started)
    print(
        f"grid page {name}: {statistics.median(pages) * 1000:.0f} ms (HTML, 48 per page), "
        f"its 48 thumbnails {statistics.median(thumbs) * 1000:.0f} ms, median of {runs}"
    )


def build_version(folder: Path, kind: str, labels: list[str]):
    """A random-weight model exported as a SavedModel, uploaded and validated as users do."""
    from django.core.files.base import ContentFile

    from models_registry.services import model_create, version_upload
    from models_registry.validation import validate_version_now

    export = folder / kind
    subprocess.run(
        [sys.executable, "-c", BUILD, kind, str(len(labels)), str(export)], check=True, cwd=ROOT
    )
    (export / "labels.txt").write_text("\n".join(labels) + "\n")
    zip_path = folder / f"{kind}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(export.rglob("*")):
            archive.write(path, path.relative_to(export).as_posix())
    model = model_create(name=f"bench-{kind}")
    version = version_upload(
        model=model, artifact=ContentFile(zip_path.read_bytes(), name=zip_path.name), labels=labels
    )
    version = validate_version_now(version.pk)
    if version.status != "ready":
        raise SystemExit(f"{kind}: {version.status}: {version.status_reason}")
    return version


def bare_loop(version, files: list[Path]) -> float:
    """Seconds for the same files through the same classifier and preprocessing, nothing else."""
    from common.preprocessing import Preprocessing
    from models_registry.evaluation.jobs import image_input
    from models_registry.runtime import configured_runtime

    started = time.perf_counter()
    classifier = configured_runtime().load(version)  # the loader the evaluator uses
    prep = Preprocessing.for_version(version)
    for path in files:
        classifier.classify(image_input(path.read_bytes(), prep))
    classifier.close()
    return time.perf_counter() - started


def profile_evaluation(version, snapshot, top: int = 18) -> None:
    """One more evaluation job under cProfile: where the time beyond the bare loop goes."""
    import cProfile
    import pstats

    from common.jobs import job_run
    from models_registry.evaluation.services import evaluation_start

    evaluation = evaluation_start(version=version, snapshot=snapshot, split="test")
    profiler = cProfile.Profile()
    profiler.runcall(job_run, str(evaluation.job_id))
    print(f"profile of one evaluation job of {version.model.name} (cumulative, top {top}):")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(top)


def time_evaluation(version, snapshot, runs: int) -> None:
    from common.jobs import job_run
    from models_registry.evaluation.models import Evaluation
    from models_registry.evaluation.plan import split_items
    from models_registry.evaluation.services import evaluation_start

    items = split_items(snapshot=snapshot, split="test").select_related("image__label")
    files = [
        SETS["casting"] / item.image.label.name / Path(item.image.original_name).name
        for item in items
    ]
    assert all(path.exists() for path in files), "original names do not match the files"
    evaluated, bare = [], []
    for _ in range(runs):
        evaluation = evaluation_start(version=version, snapshot=snapshot, split="test")
        started = time.perf_counter()
        job_run(str(evaluation.job_id))
        evaluated.append(time.perf_counter() - started)
        evaluation = Evaluation.objects.select_related("job").get(pk=evaluation.pk)
        assert evaluation.job.state == "done", evaluation.job.error
        bare.append(bare_loop(version, files))
    count = len(files)
    job, loop = statistics.median(evaluated), statistics.median(bare)
    print(
        f"evaluate {version.model.name} ({version.serving_runtime}, "
        f"{version.input_height}x{version.input_width}) on {count} test images: "
        f"job {count / job:.0f} images/s ({job:.1f} s), bare loop {count / loop:.0f} images/s "
        f"({loop:.1f} s); job / bare = {job / loop:.2f}x; "
        f"latency p50 {evaluation.metrics['latency_ms']['p50']:.1f} ms; median of {runs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="images per dataset (0: all)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rss-check", action="store_true")
    parser.add_argument("--no-mobilenet", action="store_true")
    parser.add_argument("--profile", action="store_true", help="profile one evaluation job")
    parser.add_argument("--child-import", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        child_import(Path(args.child_import[0]), args.child_import[1], Path(args.child_import[2]))
        return

    work = Path(tempfile.mkdtemp(prefix="linesight-bench-datasets-"))
    try:
        data_dir = work / "data"
        data_dir.mkdir()
        setup_django(data_dir, migrate=True)
        print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; data in {work}")
        zips = {}
        for name, source in SETS.items():
            started = time.perf_counter()
            zips[name], count = zip_class_folders(source, work / f"{name}.zip", args.limit or None)
            print(f"zipped {name}: {count} files in {time.perf_counter() - started:.1f} s")
        for name, path in zips.items():
            run_import(data_dir, name, path)
        if args.rss_check:
            quarter, count = zip_class_folders(
                SETS["casting"], work / "casting-quarter.zip", (args.limit or 6633) // 4
            )
            run_import(data_dir, "casting-quarter", quarter)
        from django.conf import settings
        from django.test.utils import override_settings, setup_test_environment

        setup_test_environment()  # the test client's host is allowed
        # Static URLs without the collectstatic manifest (a server would have run it).
        plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
        override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}).enable()
        for name in zips:
            time_grid(name, args.runs)
        evaluate(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def evaluate(work: Path, args) -> None:
    from models_registry.datasets.models import Dataset
    from models_registry.datasets.services import dataset_split, snapshot_create

    dataset = Dataset.objects.get(name="casting")
    split = dataset_split(dataset=dataset, seed=1)
    snapshot = snapshot_create(dataset=dataset)
    print(f"casting split {split.parameters.get('grouping')}: {snapshot.counts}")
    labels = sorted(dataset.labels.values_list("name", flat=True))
    kinds = ["demo"] if args.no_mobilenet else ["demo", "mobilenet"]
    for kind in kinds:
        started = time.perf_counter()
        version = build_version(work, kind, labels)
        print(f"{kind}: built, uploaded and validated in {time.perf_counter() - started:.0f} s")
        time_evaluation(version, snapshot, args.runs)
        if args.profile:
            profile_evaluation(version, snapshot)


if __name__ == "__main__":
    main()
