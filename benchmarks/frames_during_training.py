"""Frames while a model trains (issue 10): the frame p50 before, during and after a
training run on the same 2-core machine, and the training process's CPU priority.

In a fresh data folder (its own SQLite database and media, removed at the end) it:

1. registers a tiny colour classifier for station RB1 (uploaded and validated like a
   user's model) and starts the production server (uvicorn, ``--workers``);
2. imports ``--limit`` casting photographs (../shared/datasets) through the import job
   and snapshots them, as the training benchmark does;
3. posts frames for ``--warmup`` seconds (every worker loads the model), then
   ``--frames`` frames one after another: the p50 without training;
4. runs the training job (the product's default recipe, the niced training process,
   ``--budget`` seconds) while posting frames the whole time, in turns of ``--window``
   seconds with the training process running and stopped (SIGSTOP / SIGCONT): the
   ratio of the two p50s is the training's cost to frames under the same load of the
   rest of the (shared) machine;
5. posts ``--frames`` frames again: the p50 after.

    .venv/bin/python benchmarks/frames_during_training.py [--limit 1200] [--budget 180]
"""

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.retention import (  # noqa: E402
    pct,
    post_frames,
    register_station,
    start_server,
    wait_healthy,
)
from benchmarks.training import SETS, import_dataset, setup_django  # noqa: E402

TRAINER = b"models_registry.training.worker"


def _trainers() -> list[int]:
    """The training process (its command line names the worker module), wherever it is."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if TRAINER in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
    return found


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def train_while_posting(snapshot, port, token, images, budget: int, window: float):
    """Run the training job here (it starts the niced training process) while a thread
    posts frames until it ends, in windows of ``window`` seconds with the training process
    running and stopped (SIGSTOP) in turns: both under the same load of the rest of the
    machine. Returns the run, its state, the wall time and the latencies per window kind.
    """
    from common.jobs import job_run
    from models_registry.training.models import TrainingRun
    from models_registry.training.services import training_start

    run = training_start(
        snapshot=snapshot, model_name="casting", settings={"time_budget_seconds": budget}
    )
    finished = threading.Event()
    latencies: dict[str, list[float]] = {"training": [], "stopped": []}

    def post_in_windows() -> None:
        kind = "training"
        while not finished.is_set():
            trainers = _trainers()
            _signal(trainers, signal.SIGSTOP if kind == "stopped" else signal.SIGCONT)
            until = time.monotonic() + window
            latencies[kind] += post_frames(
                port,
                token,
                images,
                lambda i, until=until: finished.is_set() or time.monotonic() >= until,
            )
            _signal(trainers, signal.SIGCONT)
            kind = "stopped" if kind == "training" else "training"

    poster = threading.Thread(target=post_in_windows)
    poster.start()
    started = time.perf_counter()
    try:
        state = job_run(str(run.job_id))
    finally:
        finished.set()
        poster.join()
    wall = time.perf_counter() - started
    run = TrainingRun.objects.select_related("job").get(pk=run.pk)
    return run, state, wall, latencies


def show(name: str, values: list[float], base: float) -> None:
    print(
        f"  frame p50 {name:>16}: {statistics.median(values):6.1f} ms "
        f"(p95 {pct(values, 95):6.1f}, {len(values)} frames, "
        f"x{statistics.median(values) / base:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=1200, help="casting photographs imported")
    parser.add_argument("--budget", type=int, default=180, help="training time budget, seconds")
    parser.add_argument("--frames", type=int, default=300, help="frames before and after")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of frames first")
    parser.add_argument(
        "--window", type=float, default=3.0, help="seconds of each running / stopped turn"
    )
    parser.add_argument("--port", type=int, default=8793)
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="linesight-train-frames-"))
    os.environ["LINESIGHT_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    os.environ["LINESIGHT_STATION_FRAME_RATE"] = "0"
    try:
        setup_django(data_dir)
        from django.conf import settings
        from django.db import connection

        from masterdata.models import Line, Plant
        from tests.images import GREEN, RED, frame_bytes

        plant = Plant.objects.create(code="TBENCH", name="Training bench", time_zone="UTC")
        line = Line.objects.create(code="TL1", plant=plant)
        _, _, token = register_station(line, data_dir)
        print(f"importing {args.limit} casting photographs")
        snapshot = import_dataset("casting", SETS["casting"], data_dir, args.limit)
        connection.close()  # the server's workers write to the same SQLite file

        images = [frame_bytes(colour, size=(640, 480)) for colour in (RED, GREEN)]
        server = start_server(args.port, args.workers)
        try:
            wait_healthy(args.port)
            # Warm-up: until every worker has loaded TensorFlow and the model (a worker
            # still starting takes a core from the one answering).
            warm_until = time.monotonic() + args.warmup
            post_frames(args.port, token, images, lambda i: time.monotonic() >= warm_until)
            before = post_frames(args.port, token, images, lambda i: i >= args.frames)
            run, state, wall, during = train_while_posting(
                snapshot, args.port, token, images, args.budget, args.window
            )
            after = post_frames(args.port, token, images, lambda i: i >= args.frames)
        finally:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)

        print(
            f"\ntraining: {state} in {wall:.0f} s wall ({len(run.history)} epochs, "
            f"peak RSS {run.peak_rss_mb or 0:.0f} MB), process nice "
            f"{settings.LINESIGHT['TRAINING_NICE']}; server workers: {args.workers}, "
            f"cores: {os.cpu_count()}"
        )
        if state != "done":
            print(f"  {run.job.error}")
        base = statistics.median(before)
        print("one after another (the load of the rest of the machine changes meanwhile):")
        show("before", before, base)
        show("after", after, base)
        print(
            "while the run lasts, in turns of "
            f"{args.window:g} s with its process running and stopped (same load otherwise):"
        )
        stopped = statistics.median(during["stopped"])
        show("training stopped", during["stopped"], stopped)
        show("training runs", during["training"], stopped)
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
