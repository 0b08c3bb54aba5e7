"""TensorFlow Lite: `.tflite` files on LiteRT's interpreter (the `tflite` extra, no TensorFlow).

One `Interpreter` is not safe to call from two threads (its wrapper refuses a call
while another holds its tensors), so instances are not shared: the scheduler gives
each worker its own, each with its own thread count (`num_threads`), as for ONNX
Runtime. A file with signatures is served through one (`serving_default`, the only
one, or `options.signature`), with the signature's names; an older file without
signatures through its input and output tensors, by tensor name. The batch size is
set per call (`resize_tensor_input`): cheap once a size has been seen.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, SignatureRunner
from pydantic import BaseModel, ConfigDict, Field

from batchserve.datatypes import TensorSpec, v2_datatype
from batchserve.errors import InferenceError, InvalidInput, ModelLoadError
from batchserve.runtimes.base import ModelInstance, Runtime, RuntimeOptions, check_batch

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"


class TfliteOptions(BaseModel):
    """model.yaml `options:` for backend tflite."""

    model_config = ConfigDict(extra="forbid")

    signature: str | None = Field(
        None, description="the signature to serve; default serving_default, or the only one"
    )


def _spec(name: str, details: Mapping[str, object]) -> TensorSpec:
    """A tensor as batchserve describes it: `shape_signature` has -1 where `shape` has 1."""
    dtype = np.dtype(details["dtype"])  # type: ignore[call-overload]
    try:
        v2_datatype(dtype)
    except ValueError:
        raise ModelLoadError(f"tensor {name!r} has unsupported type {dtype}") from None
    shape = details.get("shape_signature")
    if shape is None or len(shape) == 0:  # type: ignore[arg-type]
        shape = details["shape"]
    return TensorSpec(name, dtype, tuple(int(d) for d in shape))  # type: ignore[attr-defined]


def choose_signature(available: list[str], requested: str | None, path: Path) -> str | None:
    """The signature to serve; None for a file that has none (served by tensor names)."""
    if requested is not None:
        if requested not in available:
            raise ModelLoadError(
                f"{path}: no signature {requested!r} (it has: {', '.join(available) or 'none'})"
            )
        return requested
    if not available:
        return None
    if DEFAULT_SIGNATURE in available:
        return DEFAULT_SIGNATURE
    if len(available) == 1:
        return available[0]
    raise ModelLoadError(
        f"{path} has signatures {', '.join(available)}; choose one with options.signature"
    )


class TfliteInstance(ModelInstance):
    """One LiteRT interpreter: one caller at a time."""

    concurrency_safe = False
    never_shared = True  # the interpreter keeps per-call state in itself

    def __init__(self, interpreter: Interpreter, signature: str | None) -> None:
        self._interpreter: Interpreter | None = interpreter
        self.signature = signature
        self._runner: SignatureRunner | None = None
        if signature is not None:
            self._runner = interpreter.get_signature_runner(signature)
            in_details = self._runner.get_input_details()
            out_details = self._runner.get_output_details()
        else:
            in_details = {d["name"]: d for d in interpreter.get_input_details()}
            out_details = {d["name"]: d for d in interpreter.get_output_details()}
        self.inputs = tuple(_spec(name, d) for name, d in in_details.items())
        self.outputs = tuple(_spec(name, d) for name, d in out_details.items())
        self._input_index = {name: int(d["index"]) for name, d in in_details.items()}
        self._output_index = {name: int(d["index"]) for name, d in out_details.items()}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_batch(self.inputs, inputs)
        interpreter = self._interpreter
        if interpreter is None:
            raise InferenceError("the model is closed")
        batch = {name: np.ascontiguousarray(array) for name, array in inputs.items()}
        try:
            if self._runner is not None:
                return dict(self._runner(**batch))
            return self._run_tensors(interpreter, batch)
        except ValueError as exc:
            raise InvalidInput(f"LiteRT refused the input: {exc}") from exc
        except Exception as exc:  # the interpreter failed on this input
            raise InferenceError(f"LiteRT failed: {exc}") from exc

    def _run_tensors(
        self, interpreter: Interpreter, batch: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """A file without signatures: resize, allocate, set, invoke, read by tensor index."""
        for name, array in batch.items():
            interpreter.resize_tensor_input(self._input_index[name], array.shape, strict=True)
        interpreter.allocate_tensors()
        for name, array in batch.items():
            interpreter.set_tensor(self._input_index[name], array)
        interpreter.invoke()
        # get_tensor copies: the results outlive the next call.
        return {name: interpreter.get_tensor(i) for name, i in self._output_index.items()}

    def close(self) -> None:
        self._runner = None
        self._interpreter = None


class TfliteRuntime(Runtime):
    """Loads `.tflite` files into LiteRT interpreters, one per worker."""

    name = "tflite"
    platform = "tensorflow_lite"
    default_artifact = "model.tflite"
    suffixes = (".tflite",)
    shared_by_default = False
    Options = TfliteOptions

    def load(self, path: Path, options: RuntimeOptions) -> TfliteInstance:
        own: TfliteOptions = self.options_of(options)
        if options.device != "cpu":
            log.warning("device %r requested; LiteRT runs on the CPU here", options.device)
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=options.intra_op_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: not a loadable .tflite file: {exc}") from exc
        signature = choose_signature(list(interpreter.get_signature_list()), own.signature, path)
        if signature is None:
            interpreter.allocate_tensors()
        return TfliteInstance(interpreter, signature)
