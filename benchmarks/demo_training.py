"""Benchmark: the demo model's full training run, as a first ``make demo`` pays for it.

Each run is a fresh process (``python -m demo.training``), so
Python and TensorFlow start-up, frame generation, training, the held-out
evaluation and the export are all in the wall time. Prints each run and the
medians. Usage::

    .venv/bin/python benchmarks/demo_training.py [--runs 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one_run(out: Path) -> dict:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "demo.training", "--out", str(out), "--json"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    figures = json.loads(completed.stdout)
    return {**figures, "process_seconds": wall}


def wide_holdout_accuracy(zip_path: Path, per_class: int, seed: int) -> tuple[float, int]:
    """The exported model's accuracy on many more unseen frames (another seed again)."""
    import zipfile

    import numpy as np
    import tensorflow as tf

    from demo.training import holdout_arrays

    with tempfile.TemporaryDirectory() as tmp:
        zipfile.ZipFile(zip_path).extractall(tmp)
        serving = tf.saved_model.load(tmp).signatures["serving_default"]
        images, labels = holdout_arrays(per_class, seed)
        right = 0
        for start in range(0, len(labels), 200):
            batch = tf.constant(images[start : start + 200].astype(np.float32) / 255.0)
            (scores,) = serving(image=batch).values()
            right += int(np.sum(scores.numpy().argmax(axis=1) == labels[start : start + 200]))
    return right / len(labels), len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--wide-holdout", type=int, default=250, help="frames per class to re-check the last model"
    )
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    runs = []
    wide = None
    with tempfile.TemporaryDirectory(prefix="demo-training-bench-") as tmp:
        for number in range(args.runs):
            run = one_run(Path(tmp) / str(number))
            runs.append(run)
            print(
                f"run {number + 1}: data {run['generation_seconds']:.1f} s, "
                f"training {run['training_seconds']:.1f} s, "
                f"evaluation+export {run['evaluation_seconds']:.1f} s, "
                f"in-process total {run['total_seconds']:.1f} s, "
                f"process wall {run['process_seconds']:.1f} s, "
                f"held-out accuracy {run['accuracy']:.2%} ({run['holdout_frames']} frames)"
            )
        if args.wide_holdout:
            wide = wide_holdout_accuracy(Path(runs[-1]["zip_path"]), args.wide_holdout, 31337)
    size = (Path(runs[-1]["zip_path"]).name, runs[-1]["train_frames"], runs[-1]["epochs"])
    print(f"artifact {size[0]}, {size[1]} training frames, {size[2]} epochs")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("median over", len(runs), "runs:")
    for key, label in [
        ("generation_seconds", "data generation"),
        ("training_seconds", "training"),
        ("evaluation_seconds", "held-out evaluation + export"),
        ("total_seconds", "total in process"),
        ("process_seconds", "total wall, with Python/TensorFlow start-up"),
    ]:
        print(f"  {label:<45} {statistics.median(r[key] for r in runs):6.1f} s")
    accuracy = statistics.median(r["accuracy"] for r in runs)
    print(f"  {'held-out accuracy':<45} {accuracy:7.2%}")
    if wide is not None:
        print(f"  {f'last model on {wide[1]} more unseen frames':<45} {wide[0]:7.2%}")
    print(f"  {'target':<45} total wall < 120 s, accuracy >= 95%")


if __name__ == "__main__":
    main()
