"""The worker's side of the training process: start it under limits, follow it, stop it.

The process reports JSON lines on stdout; ``follow`` hands each to the
caller and, between lines, checks every second whether the run should stop
(cancelled, or over its wall-time limit). Whatever ends the run, the
process group is killed before ``follow`` returns or raises.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from models_registry.training.worker import TrainingRequest
from models_registry.validation.runner import MEMORY_HINTS, log_tail, sandbox_env

POLL_SECONDS = 1.0


class TrainingStopped(Exception):
    """The training process ended without a result; the message says why, for a person."""


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def started(request: TrainingRequest, work_dir: Path) -> Iterator[subprocess.Popen]:
    """The training process, running in its own process group; killed on the way out."""
    request_path = work_dir / "request.json"
    request.write(request_path)
    command = [sys.executable, "-P", "-m", "models_registry.training.worker", str(request_path)]
    with open(work_dir / "training.log", "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=work_dir,
            env=sandbox_env(work_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # its own process group, killed as a whole
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            process.stdout.close()


def follow(
    process: subprocess.Popen,
    *,
    on_event: Callable[[dict], None],
    should_stop: Callable[[], bool],
    timeout_seconds: float,
) -> None:
    """Pass each event to ``on_event`` until the process exits; raises TrainingStopped
    after killing it when it overruns ``timeout_seconds``. ``should_stop`` is asked about
    once a second; True kills the process and returns (the caller knows why)."""
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            line = lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            line = ""
        if line is None:  # stdout closed: the process is ending
            process.wait()
            return
        if line.startswith("{"):
            on_event(json.loads(line))
        if should_stop():
            os.killpg(process.pid, signal.SIGKILL)
            return
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise TrainingStopped(
                f"The training did not finish within {timeout_seconds:.0f} s and was stopped."
            )


def exit_reason(returncode: int, work_dir: Path, memory_mb: int) -> str:
    """Why a training process that ended without a result did, in a sentence."""
    tail = log_tail(work_dir / "training.log")
    if any(hint in tail for hint in MEMORY_HINTS):
        return (
            f"The training process ran out of memory (limit {memory_mb:,} MB, the setting "
            "LINESIGHT['TRAINING_MEMORY_MB']); use a smaller input size or batch size."
        )
    if returncode == -signal.SIGXCPU:
        return "The training process used more CPU time than it is allowed and was stopped."
    if returncode == -signal.SIGKILL:
        return (
            "The training process was killed (SIGKILL), by the system (out of memory?) or an "
            "operator; nothing was registered."
        )
    if returncode < 0:
        return f"The training process crashed ({signal.Signals(-returncode).name})."
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    return f"The training process stopped with status {returncode}: {last.strip()[:300]}"
