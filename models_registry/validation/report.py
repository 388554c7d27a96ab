"""What the worker and the sandbox process tell each other, as JSON files.

The worker writes a ``SandboxRequest``; the sandbox rewrites its
``SandboxReport`` after every stage, so when the sandbox is killed the worker
still knows how far it got. Plain dataclasses: this module must import
neither Django nor TensorFlow, both sides use it.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Stages in the order the sandbox reaches them.
STARTED = "started"
CHECKED = "checked"  # saved_model.pb parsed, signature read, graph policy passed
LOADED = "loaded"  # TensorFlow loaded the SavedModel
VALIDATED = "validated"  # probe inference, warm-up latency, serving SavedModel in place
DONE = "done"  # TFLite conversion and parity attempted
STAGES = (STARTED, CHECKED, LOADED, VALIDATED, DONE)

VALUE_RANGES = {"0_1": (0.0, 1.0), "-1_1": (-1.0, 1.0), "0_255": (0.0, 255.0)}


@dataclass
class SandboxRequest:
    model_path: str  # a SavedModel directory or a .keras file
    model_format: str  # "savedmodel" or "keras"
    out_dir: str
    expected_outputs: int
    value_scale: str = "0_1"  # range of generated float inputs; uint8 inputs use 0..255
    threads: int = 1
    memory_mb: int = 8192
    max_file_bytes: int = 4 * 1024**3
    timeout_seconds: int = 600
    parent_pid: int = 0
    parity_tolerance: float = 1e-3
    parity_samples: int = 32
    latency_runs: int = 20

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> "SandboxRequest":
        return cls(**json.loads(path.read_text()))


@dataclass
class Signature:
    signature_name: str = ""
    input_name: str = ""
    output_name: str = ""
    input_height: int | None = None
    input_width: int | None = None
    input_channels: int | None = None
    input_dtype: str = ""
    output_width: int | None = None


@dataclass
class TFLiteCheck:
    converted: bool = False
    error: str = ""  # why there is no TFLite form, in a sentence
    samples: int = 0
    top1_mismatches: int = 0
    max_abs_diff: float | None = None
    latency_ms: float | None = None
    tolerance: float = 1e-3

    @property
    def parity_passed(self) -> bool:
        return (
            self.converted
            and self.samples > 0
            and self.top1_mismatches == 0
            and self.max_abs_diff is not None
            and self.max_abs_diff <= self.tolerance
        )


@dataclass
class SandboxReport:
    stage: str = STARTED
    invalid_reason: str = ""  # set when the sandbox found the model unusable
    signature: Signature = field(default_factory=Signature)
    outputs_probabilities: bool = True
    warmup_latency_ms: float | None = None
    savedmodel_dir: str = ""  # the SavedModel that serves (the upload's, or the .keras export)
    tflite: TFLiteCheck = field(default_factory=TFLiteCheck)
    tflite_file: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds per sandbox step
    current: str = ""  # the step under way (a key of ``timings`` once it ends), read live

    def reached(self, stage: str) -> bool:
        return STAGES.index(self.stage) >= STAGES.index(stage)

    def write(self, path: Path) -> None:
        # Write then rename: a killed sandbox never leaves half a report.
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self)))
        os.replace(partial, path)

    @classmethod
    def from_dict(cls, data: dict) -> "SandboxReport":
        data = dict(data)
        data["signature"] = Signature(**data.get("signature", {}))
        data["tflite"] = TFLiteCheck(**data.get("tflite", {}))
        return cls(**data)

    @classmethod
    def read(cls, path: Path) -> "SandboxReport":
        return cls.from_dict(json.loads(path.read_text()))
