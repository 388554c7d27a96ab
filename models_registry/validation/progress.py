"""Live progress of a validation run: the steps done (with their time), the one under way.

The worker's own steps (unpack, store) and the sandbox's (read live from its
report file) are kept in one ``ValidationProgress``; every change is handed to
``publish`` as a JSON-able snapshot, which the validation job writes where the
version page reads it. No Django here: the runner and the service share it.
"""

import time
from collections.abc import Callable

from models_registry.validation.report import SandboxReport

# Every step a run may take, in order, as a person reads it. The keys of the
# sandbox's steps are the keys of SandboxReport.timings.
STEP_NAMES = {
    "unpack": "Unpack and check the archive",
    "import_tensorflow": "Start TensorFlow in the sandbox",
    "keras_export": "Export the Keras model",
    "check": "Read the signature, check the graph",
    "load": "Load the model",
    "probe": "Warm-up inference",
    "tflite": "TFLite conversion",
    "parity": "TFLite parity check",
    "store": "Store the serving files",
}
DONE, RUNNING, FAILED, SKIPPED, PENDING = "done", "running", "failed", "skipped", "pending"

Snapshot = dict  # {"steps": [{"key", "name", "state", "seconds"}], "current": key or ""}


def planned_steps(*, keras: bool) -> list[str]:
    """The steps of a run, in order; only a .keras upload is exported first."""
    return [key for key in STEP_NAMES if keras or key != "keras_export"]


class ValidationProgress:
    """The steps of one run and their state; ``publish`` gets a snapshot on every change."""

    def __init__(self, *, keras: bool, publish: Callable[[Snapshot], None] | None = None):
        self.order = planned_steps(keras=keras)
        self.states: dict[str, str] = dict.fromkeys(self.order, PENDING)
        self.seconds: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.publish = publish

    def _set(self, key: str, state: str, seconds: float | None = None) -> None:
        if key not in self.states:  # a step this code does not know (a newer sandbox)
            self.order.append(key)
        self.states[key] = state
        if seconds is not None:
            self.seconds[key] = round(seconds, 3)

    def _publish(self) -> None:
        if self.publish is not None:
            self.publish(self.snapshot())

    def start(self, key: str) -> None:
        """A worker-side step begins."""
        self.started[key] = time.monotonic()
        self._set(key, RUNNING)
        self._publish()

    def finish(self, key: str) -> None:
        """A worker-side step ends well."""
        self._set(key, DONE, time.monotonic() - self.started.get(key, time.monotonic()))
        self._publish()

    def sandbox(self, report: SandboxReport, *, ended: bool = False) -> None:
        """Take the sandbox's steps from its report; once it ended, a step still open failed."""
        for key, seconds in report.timings.items():
            if key != report.current:
                self._set(key, DONE, seconds)
        if report.current:
            open_state = FAILED if ended or report.invalid_reason else RUNNING
            self._set(report.current, open_state, report.timings.get(report.current))
        # Also when nothing changed: the publisher is the job's heartbeat (it skips repeats).
        self._publish()

    def fail(self) -> None:
        """The run stopped: the step under way failed, the ones after it never ran."""
        for key in self.order:
            if self.states[key] in (RUNNING, PENDING):
                self._set(key, FAILED if self.states[key] == RUNNING else SKIPPED)
        self._publish()

    def end(self) -> None:
        """The run succeeded: steps that never ran (no TFLite form) were skipped."""
        for key in self.order:
            if self.states[key] == PENDING:
                self._set(key, SKIPPED)
        self._publish()

    def snapshot(self) -> Snapshot:
        steps = [
            {
                "key": key,
                "name": STEP_NAMES.get(key, key),
                "state": self.states[key],
                "seconds": self.seconds.get(key),
            }
            for key in self.order
        ]
        current = next((step["key"] for step in steps if step["state"] == RUNNING), "")
        return {"steps": steps, "current": current}
