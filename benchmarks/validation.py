"""How long validation takes for a MobileNetV2-size model, through the real path.

Builds a Keras MobileNetV2 224x224 with random weights (``weights=None``),
exports it with ``model.export`` and zips it, as a user would. Then, in a
fresh data folder (its own SQLite database and media), uploads it with
``version_upload`` and validates it with ``validate_version_now`` several
times (the sandbox process, limits, TFLite conversion and parity included).
Prints each run, the median validation time, and the warm-up latencies
validation recorded: SavedModel signature vs TFLite (LiteRT, XNNPACK), both
on LINESIGHT_INFERENCE_THREADS threads (1 by default), batch 1.

    .venv/bin/python benchmarks/validation.py [--runs 3] [--classes 4]

This process plays the task worker: it never imports TensorFlow (the model
is built in a child process), which it checks at the end.
"""

import argparse
import io
import os
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

BUILD = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
model = keras.applications.MobileNetV2(
    weights=None, input_shape=(224, 224, 3), classes={classes}, classifier_activation="softmax"
)
model.export(sys.argv[1], verbose=False)
"""


def build_artifact(folder: Path, classes: int) -> bytes:
    export = folder / "mobilenet_v2"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", BUILD.format(classes=classes), str(export)], check=True, cwd=ROOT
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(export.rglob("*")):
            archive.write(path, str(path.relative_to(export)))
    print(f"built and exported MobileNetV2 in {time.perf_counter() - started:.1f} s")
    return buffer.getvalue()


def setup_django(data_dir: Path) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LINESIGHT_SECRET_KEY": secrets.token_urlsafe(40),
            "LINESIGHT_DATA_DIR": str(data_dir),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "LINESIGHT_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--classes", type=int, default=4)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="linesight-bench-validation-"))
    try:
        data = build_artifact(data_dir, args.classes)
        setup_django(data_dir)
        from django.conf import settings
        from django.core.files.base import ContentFile

        from models_registry.services import model_create, version_upload
        from models_registry.validation import validate_version_now
        from models_registry.validation.runner import run_sandbox

        timings: list[dict] = []

        def timed_sandbox(**kwargs):
            result = run_sandbox(**kwargs)
            timings.append(result.report.timings)
            return result

        labels = ["ok"] + [f"defect_{i}" for i in range(1, args.classes)]
        model = model_create(name="mobilenet-v2")
        print(
            f"artifact {len(data) / 1e6:.1f} MB; sandbox limits "
            f"{settings.LINESIGHT['SANDBOX_MEMORY_MB']} MB, "
            f"{settings.LINESIGHT['SANDBOX_TIMEOUT_SECONDS']} s; "
            f"inference threads {settings.LINESIGHT['INFERENCE_THREADS']}; cores {os.cpu_count()}"
        )
        rows = []
        for run in range(1, args.runs + 1):
            started = time.perf_counter()
            version = version_upload(
                model=model, artifact=ContentFile(data, name="mobilenet_v2.zip"), labels=labels
            )
            version = validate_version_now(version.pk, sandbox=timed_sandbox)
            wall = time.perf_counter() - started
            if version.status != "ready":
                raise SystemExit(f"run {run}: {version.status}: {version.status_reason}")
            rows.append(version)
            print(
                f"run {run}: validated in {version.validation_seconds:.2f} s "
                f"(upload + validation {wall:.2f} s); "
                f"SavedModel {version.warmup_latency_ms:.2f} ms, "
                f"TFLite {version.tflite_latency_ms:.2f} ms; serving {version.serving_runtime}"
            )
        seconds = statistics.median(v.validation_seconds for v in rows)
        savedmodel_ms = statistics.median(v.warmup_latency_ms for v in rows)
        tflite_ms = statistics.median(v.tflite_latency_ms for v in rows)
        last = rows[-1]
        print()
        print(f"median validation time:     {seconds:.2f} s over {len(rows)} runs")
        steps = ", ".join(
            f"{step} {statistics.median(t.get(step, 0.0) for t in timings):.2f} s"
            for step in timings[0]
        )
        print(f"  of which, in the sandbox: {steps}")
        print(f"median SavedModel latency:  {savedmodel_ms:.2f} ms (signature call, batch 1)")
        print(f"median TFLite latency:      {tflite_ms:.2f} ms (LiteRT + XNNPACK, batch 1)")
        print(f"SavedModel / TFLite:        {savedmodel_ms / tflite_ms:.1f}x")
        print(f"serving runtime:            {last.serving_runtime}: {last.serving_runtime_reason}")
        print(
            f"signature:                  {last.input_name} {last.input_height}x{last.input_width}x"
            f"{last.input_channels} {last.input_dtype} -> {last.output_name}"
        )
        assert "tensorflow" not in sys.modules, "the worker side imported TensorFlow"
        print("worker process imported TensorFlow: no")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
