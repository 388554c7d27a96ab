"""The validation sandbox: a child process that loads an untrusted model and measures it.

    python -P -m models_registry.validation.sandbox REQUEST_JSON

Models are programs (TensorFlow's SECURITY.md), so this runs apart from the
worker: the worker gives it a fresh folder, a minimal environment and a wall
time limit, and kills its process group on overrun; the memory limit is set
here, before TensorFlow is imported. Stages, each recorded in report.json as
it completes: parse saved_model.pb and check its graph without running it,
load it, run generated frames through the serving signature, convert to
TFLite and compare. A rejection is a normal outcome (exit status 0 with
``invalid_reason``); a crash or a kill leaves the report of the last stage.
Imports neither Django nor, until the limits are set, TensorFlow.
"""

import ctypes
import os
import resource
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from models_registry.validation import graph_policy
from models_registry.validation.errors import ModelRejected
from models_registry.validation.report import (
    CHECKED,
    DONE,
    LOADED,
    VALIDATED,
    VALUE_RANGES,
    SandboxReport,
    SandboxRequest,
)

IMAGE_DTYPES = {"float32", "uint8"}
PR_SET_PDEATHSIG = 1
PROBABILITY_SLACK = 1e-3


def limit_resources(request: SandboxRequest) -> None:
    """Cap address space, file size, CPU time and core dumps; die with the worker.

    The worker kills the sandbox at its wall-time limit. The CPU limit and
    the parent-death signal are for when the worker itself dies first: an
    orphaned sandbox stuck in a model's endless loop must not run forever.
    """
    cpu_seconds = request.timeout_seconds * (os.cpu_count() or 1) + 30
    for limit, value in (
        (resource.RLIMIT_AS, request.memory_mb * 1024 * 1024),
        (resource.RLIMIT_FSIZE, request.max_file_bytes),
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_CORE, 0),
    ):
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, value))
    die_with_parent(request.parent_pid)


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux for SIGKILL when the worker that started us exits (prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the CPU limit still ends an orphan
        pass
    if parent_pid and os.getppid() != parent_pid:  # the worker died before prctl took hold
        os._exit(1)


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    line = next((part.strip() for part in text.splitlines() if part.strip()), text)
    return line[:300]


def memory_reason(memory_mb: int, doing: str) -> str:
    return (
        f"The model needs more memory than the sandbox allows ({memory_mb:,} MB, "
        f"LINESIGHT_SANDBOX_MEMORY_MB) while {doing}; a frame classifier should need far less."
    )


def probe_frames(
    *, height: int, width: int, channels: int, dtype: str, value_scale: str, count: int
) -> list[Any]:
    """Generated frames in the declared value range: noise, flat colours, and the extremes."""
    rng = np.random.default_rng(20240601)
    low, high = (0.0, 255.0) if dtype == "uint8" else VALUE_RANGES.get(value_scale, (0.0, 1.0))
    shape = (1, height, width, channels)
    frames = []
    for index in range(count):
        if index % 2 == 0:
            frame = rng.uniform(low, high, shape)
        else:
            colour = rng.uniform(low, high, (1, 1, 1, channels))
            frame = colour + rng.normal(0.0, 0.05 * (high - low), shape)
        frames.append(np.clip(frame, low, high))
    frames += [np.full(shape, value) for value in (low, high, (low + high) / 2)]
    if dtype == "uint8":
        return [np.rint(frame).astype("uint8") for frame in frames]
    return [frame.astype("float32") for frame in frames]


def softmax(scores: Any) -> Any:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def top1_disagreements(reference: Any, other: Any, tolerance: float) -> int:
    """Samples whose top-1 differs, not counting ties (top scores within the tolerance)."""
    ref_top = reference.argmax(axis=-1)
    other_top = other.argmax(axis=-1)
    rows = np.arange(len(reference))
    gap = reference[rows, ref_top] - reference[rows, other_top]
    return int(np.sum((ref_top != other_top) & (gap > tolerance)))


def median_ms(call: Callable[[], Any], runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(timings)


class Sandbox:
    """One validation run inside the child process; ``run`` goes through the stages in order."""

    def __init__(self, request: SandboxRequest):
        self.request = request
        self.out = Path(request.out_dir)
        self.report = SandboxReport()
        self.report.tflite.tolerance = request.parity_tolerance
        self.report_path = self.out / "report.json"
        self.tf: Any = None
        self.loaded: Any = None  # the SavedModel object; keeps the signature's variables alive
        self.reference_scores: Any = None  # SavedModel scores on the probe frames

    def save(self, stage: str | None = None) -> None:
        if stage is not None:
            self.report.stage = stage
        self.report.write(self.report_path)

    @contextmanager
    def doing(self, what: str) -> Iterator[None]:
        """Turn TensorFlow's failures while doing ``what`` into a rejection saying so."""
        try:
            yield
        except ModelRejected:
            raise
        except MemoryError:
            raise ModelRejected(memory_reason(self.request.memory_mb, what)) from None
        except Exception as error:
            if self.tf is not None and isinstance(error, self.tf.errors.ResourceExhaustedError):
                raise ModelRejected(memory_reason(self.request.memory_mb, what)) from None
            raise ModelRejected(f"TensorFlow failed while {what}: {first_line(error)}") from None

    # --- stages ---------------------------------------------------------------

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Time a step; the report says which step is under way, for the live progress."""
        self.report.current = step
        self.save()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.report.timings[step] = round(time.perf_counter() - start, 3)
        # Only a step that ended well is closed: one that raised stays ``current`` (it failed).
        self.report.current = ""
        self.save()

    def run(self) -> None:
        self.save()
        try:
            with self.timed("import_tensorflow"):
                self.tf = import_tensorflow(self.request.threads)
        except (MemoryError, ImportError, OSError) as error:
            # Not the model's fault: the limit is below what TensorFlow itself needs.
            raise ModelRejected(
                f"The sandbox could not start TensorFlow ({first_line(error)}). Its memory "
                f"limit ({self.request.memory_mb:,} MB, LINESIGHT_SANDBOX_MEMORY_MB) is probably "
                "too low: TensorFlow needs about 1.6 GB of address space before any model."
            ) from None
        model_dir = Path(self.request.model_path)
        if self.request.model_format == "keras":
            with self.timed("keras_export"):
                model_dir = self.export_keras(model_dir)
        self.report.savedmodel_dir = str(model_dir)
        with self.timed("check"):
            meta_graph = self.check(model_dir)
        with self.timed("load"):
            function = self.load(model_dir, meta_graph)
        with self.timed("probe"):
            frames = self.probe(function)
        self.convert_to_tflite(model_dir, frames)  # times its conversion and parity steps
        self.save()  # with the last timing

    def export_keras(self, path: Path) -> Path:
        import keras

        with self.doing("loading the .keras file"):
            try:
                model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
            except ValueError as error:
                if "Lambda" in str(error) or "safe_mode" in str(error):
                    raise ModelRejected(
                        "The model has a Keras Lambda layer (Python code), which LineSight does "
                        "not run. Replace it with built-in layers."
                    ) from None
                raise ModelRejected(
                    f"Keras could not load the .keras file: {first_line(error)}"
                ) from None
        export_dir = self.out / "savedmodel"
        with self.doing("exporting the Keras model as a SavedModel"):
            model.export(str(export_dir), format="tf_saved_model", verbose=False)
        return export_dir

    def check(self, model_dir: Path) -> Any:
        """Read the serving signature and vet the graph, without running anything."""
        from google.protobuf.message import DecodeError
        from tensorflow.core.protobuf import saved_model_pb2

        saved_model = saved_model_pb2.SavedModel()
        try:
            saved_model.ParseFromString((model_dir / "saved_model.pb").read_bytes())
        except (DecodeError, ValueError, RuntimeError) as error:
            raise ModelRejected(
                f"saved_model.pb is not a valid SavedModel ({first_line(error)}); the file is "
                "corrupt or not a SavedModel. Export the model again."
            ) from None
        serving = [mg for mg in saved_model.meta_graphs if "serve" in mg.meta_info_def.tags]
        if not serving and len(saved_model.meta_graphs) == 1:
            serving = list(saved_model.meta_graphs)
        if not serving:
            raise ModelRejected(
                "saved_model.pb holds no graph tagged 'serve'; export the model for serving "
                "(model.export() or tf.saved_model.save())."
            )
        meta_graph = serving[0]
        self.report.signature.signature_name = signature_name = self.pick_signature(meta_graph)
        self.read_signature(meta_graph.signature_def[signature_name])

        bad_ops = graph_policy.forbidden_ops(meta_graph, signature_name)
        if bad_ops:
            raise ModelRejected(
                f"The model's serving path uses operations LineSight does not run: "
                f"{', '.join(bad_ops)}. They reach the file system, run Python or write logs; a "
                "classifier only computes on the frame. Remove them (e.g. tf.io.read_file, "
                "tf.py_function, tf.print to a file) and export again."
            )
        self.save(CHECKED)
        return meta_graph

    def pick_signature(self, meta_graph: Any) -> str:
        names = sorted(
            name for name in meta_graph.signature_def if name != graph_policy.INIT_OP_SIGNATURE
        )
        if "serving_default" in names:
            return "serving_default"
        if len(names) == 1:
            return names[0]
        if not names:
            raise ModelRejected(
                "The SavedModel has no serving signature; export it with model.export(), or "
                "pass signatures= to tf.saved_model.save()."
            )
        raise ModelRejected(
            f"The SavedModel has several signatures ({', '.join(names)}) and none is "
            "'serving_default'; name the one to serve 'serving_default'."
        )

    def read_signature(self, signature_def: Any) -> None:
        signature = self.report.signature
        inputs = dict(signature_def.inputs)
        if len(inputs) != 1:
            raise ModelRejected(
                f"The serving signature takes {len(inputs)} inputs ({', '.join(sorted(inputs))}); "
                "LineSight needs exactly one image input."
            )
        ((input_name, tensor),) = inputs.items()
        dtype = self.tf.dtypes.as_dtype(tensor.dtype).name
        dims = [dim.size for dim in tensor.tensor_shape.dim]
        shown = "(" + ", ".join("None" if size < 0 else str(size) for size in dims) + ")"
        if tensor.tensor_shape.unknown_rank or len(dims) != 4:
            raise ModelRejected(
                f"The serving input '{input_name}' has shape "
                f"{'unknown' if tensor.tensor_shape.unknown_rank else shown}; it is not an image. "
                "LineSight needs one image input shaped (batch, height, width, channels)."
            )
        batch, height, width, channels = dims
        if channels not in (1, 3):
            raise ModelRejected(
                f"The serving input '{input_name}' {shown} has {channels} channels; LineSight "
                "feeds greyscale (1) or RGB (3) images."
            )
        if height <= 0 or width <= 0:
            raise ModelRejected(
                f"The serving input '{input_name}' {shown} has no fixed height and width; "
                "export the model with a fixed input size, e.g. keras.Input((224, 224, 3))."
            )
        if batch not in (-1, 1):
            raise ModelRejected(
                f"The serving input '{input_name}' {shown} takes batches of exactly {batch} "
                "frames; LineSight sends one frame at a time (use a batch size of None or 1)."
            )
        if dtype not in IMAGE_DTYPES:
            raise ModelRejected(
                f"The serving input '{input_name}' is {dtype}; LineSight feeds float32 or uint8 "
                "images."
            )
        outputs = dict(signature_def.outputs)
        if len(outputs) != 1:
            raise ModelRejected(
                f"The serving signature returns {len(outputs)} outputs "
                f"({', '.join(sorted(outputs))}); LineSight needs one output of class scores."
            )
        ((output_name, output),) = outputs.items()
        out_dims = [dim.size for dim in output.tensor_shape.dim]
        if not output.tensor_shape.unknown_rank and len(out_dims) != 2:
            raise ModelRejected(
                f"The serving output '{output_name}' has {len(out_dims)} dimensions; LineSight "
                "needs class scores shaped (batch, classes)."
            )
        signature.input_name = input_name
        signature.output_name = output_name
        signature.input_height, signature.input_width = height, width
        signature.input_channels = channels
        signature.input_dtype = dtype
        if len(out_dims) == 2 and out_dims[1] > 0:
            self.check_output_width(out_dims[1])

    def check_output_width(self, width: int) -> None:
        self.report.signature.output_width = width
        expected = self.request.expected_outputs
        if width != expected:
            raise ModelRejected(
                f"The model returns {width} scores per frame but the version has {expected} "
                f"label{'s' if expected != 1 else ''}; give exactly one label per output, in "
                "output order."
            )

    def load(self, model_dir: Path, meta_graph: Any) -> Any:
        with self.doing("loading the SavedModel"):
            tags = list(meta_graph.meta_info_def.tags) or None
            loaded = self.tf.saved_model.load(str(model_dir), tags=tags)
            function = loaded.signatures[self.report.signature.signature_name]
        self.loaded = loaded
        self.save(LOADED)
        return function

    def probe(self, function: Any) -> list[Any]:
        """Run generated frames through the signature: shapes, scores, warm-up latency."""
        signature = self.report.signature
        frames = probe_frames(
            height=signature.input_height,
            width=signature.input_width,
            channels=signature.input_channels,
            dtype=signature.input_dtype,
            value_scale=self.request.value_scale,
            count=self.request.parity_samples,
        )
        scores = []
        with self.doing("running a warm-up inference"):
            for frame in frames:
                result = function(**{signature.input_name: self.tf.constant(frame)})
                scores.append(np.asarray(result[signature.output_name].numpy()))
            first = self.tf.constant(frames[0])

            def call() -> Any:
                return function(**{signature.input_name: first})[signature.output_name].numpy()

            latency = median_ms(call, self.request.latency_runs)
        shape = scores[0].shape
        if len(shape) != 2 or shape[0] != 1:
            raise ModelRejected(
                f"For one frame the model returns scores shaped {shape}; LineSight needs "
                f"(1, classes)."
            )
        self.check_output_width(shape[1])
        if not np.issubdtype(scores[0].dtype, np.floating):
            raise ModelRejected(
                f"The model returns {scores[0].dtype} values; LineSight needs float class scores."
            )
        stacked = np.concatenate(scores).astype("float64")
        if not np.all(np.isfinite(stacked)):
            raise ModelRejected(
                "The model returns NaN or infinite scores on generated frames; check its "
                "weights and its expected input range."
            )
        self.reference_scores = stacked
        self.report.outputs_probabilities = bool(
            stacked.min() >= -PROBABILITY_SLACK
            and stacked.max() <= 1 + PROBABILITY_SLACK
            and np.all(np.abs(stacked.sum(axis=1) - 1.0) <= PROBABILITY_SLACK)
        )
        self.report.warmup_latency_ms = latency
        self.save(VALIDATED)
        return frames

    def convert_to_tflite(self, model_dir: Path, frames: list[Any]) -> None:
        """The fast path: convert, then compare with the SavedModel on the same frames."""
        check = self.report.tflite
        try:
            with self.timed("tflite"):
                converter = self.tf.lite.TFLiteConverter.from_saved_model(
                    str(model_dir), signature_keys=[self.report.signature.signature_name]
                )
                flatbuffer = converter.convert()
        except Exception as error:
            check.error = f"TFLite conversion failed: {first_line(error)}"
            self.save(DONE)
            return
        with self.timed("parity"):
            self.check_parity(flatbuffer, frames)
        self.save(DONE)

    def check_parity(self, flatbuffer: bytes, frames: list[Any]) -> None:
        """Run the converted model on the probe frames; keep it if LiteRT runs it."""
        check = self.report.tflite
        signature = self.report.signature
        try:
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
            runner = interpreter.get_signature_runner(signature.signature_name)
            scores = [
                np.asarray(runner(**{signature.input_name: frame})[signature.output_name])
                for frame in frames
            ]
            latency = median_ms(
                lambda: runner(**{signature.input_name: frames[0]}),
                self.request.latency_runs * 2,
            )
        except Exception as error:
            check.error = f"LiteRT could not run the converted model: {first_line(error)}"
            return
        tflite_path = self.out / "model.tflite"
        tflite_path.write_bytes(flatbuffer)
        self.report.tflite_file = str(tflite_path)
        check.converted = True
        check.latency_ms = latency
        lite = np.concatenate(scores).astype("float64")
        reference = self.reference_scores
        if lite.shape != reference.shape or not np.all(np.isfinite(lite)):
            check.error = f"The TFLite model returns scores shaped {lite.shape} or non-finite."
            return
        if not self.report.outputs_probabilities:
            reference, lite = softmax(reference), softmax(lite)
        check.samples = len(frames)
        check.max_abs_diff = float(np.max(np.abs(reference - lite)))
        check.top1_mismatches = top1_disagreements(reference, lite, self.request.parity_tolerance)


def import_tensorflow(threads: int) -> Any:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m models_registry.validation.sandbox REQUEST_JSON", file=sys.stderr)
        return 2
    request = SandboxRequest.read(Path(argv[1]))
    limit_resources(request)
    sandbox = Sandbox(request)
    try:
        sandbox.run()
    except ModelRejected as rejection:
        sandbox.report.invalid_reason = rejection.reason
        sandbox.save()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
