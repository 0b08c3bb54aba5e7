"""ONNX Runtime: the default runtime.

One `InferenceSession` may be called from many threads at once (ONNX Runtime
documents `Run` as thread-safe), so instances say `concurrency_safe = True`.
Intra-op threads are a session option, so each instance has its own count.

model.yaml `options:`: `providers`, the execution providers to try in order
(CPU is always last); `device: cuda` alone asks for the CUDA provider.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field

from batchserve.datatypes import TensorSpec
from batchserve.errors import InferenceError, InvalidInput, ModelLoadError
from batchserve.runtimes.base import ModelInstance, Runtime, RuntimeOptions

log = logging.getLogger(__name__)

_ORT_TYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(string)": np.dtype(np.object_),
}


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise ModelLoadError(f"tensor {arg.name!r} has unsupported type {arg.type}")
    return TensorSpec(arg.name, dtype, shape)


def choose_providers(requested: Sequence[str] | None, device: str) -> list[str]:
    """The execution providers to use: what was asked for and is present, CPU last.

    A provider asked for but missing on this machine (CUDA on a CPU box) is
    dropped with a warning rather than failing the load.
    """
    wanted = list(requested) if requested else []
    if not wanted and device == "cuda":
        wanted = ["CUDAExecutionProvider"]
    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available and p != "CPUExecutionProvider"]
    missing = [p for p in wanted if p not in available]
    if missing:
        log.warning(
            "execution providers %s are not available here (available: %s); using %s",
            missing,
            sorted(available),
            [*chosen, "CPUExecutionProvider"],
        )
    return [*chosen, "CPUExecutionProvider"]


class OnnxOptions(BaseModel):
    """model.yaml `options:` for backend onnx."""

    model_config = ConfigDict(extra="forbid")

    providers: list[str] | None = Field(
        None, description="execution providers, e.g. [CUDAExecutionProvider]"
    )


class OnnxInstance(ModelInstance):
    """One ONNX Runtime session."""

    concurrency_safe = True

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self.inputs = tuple(_spec(a) for a in session.get_inputs())
        self.outputs = tuple(_spec(a) for a in session.get_outputs())
        self._output_names = [o.name for o in self.outputs]
        self.providers = tuple(session.get_providers())

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            results = self._session.run(self._output_names, dict(inputs))
        except (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ValueError) as exc:
            raise InvalidInput(str(exc)) from exc
        except Exception as exc:  # the runtime failed on this input: the caller's error
            raise InferenceError(f"ONNX Runtime failed: {exc}") from exc
        return dict(zip(self._output_names, results, strict=True))

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


class OnnxRuntime(Runtime):
    """Loads `.onnx` files into ONNX Runtime sessions."""

    name = "onnx"
    platform = "onnxruntime_onnx"
    default_artifact = "model.onnx"
    suffixes = (".onnx",)
    shared_by_default = True
    Options = OnnxOptions

    def load(self, path: Path, options: RuntimeOptions) -> OnnxInstance:
        own: OnnxOptions = self.options_of(options)
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.intra_op_threads or 0
        so.inter_op_num_threads = options.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if options.intra_op_threads and options.intra_op_threads > 1:
            # Several sessions share the cores; spinning threads would steal them from each other.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = choose_providers(own.providers, options.device)
        try:
            session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:
            if providers != ["CPUExecutionProvider"]:
                log.warning("providers %s failed (%s); falling back to CPU", providers, exc)
                try:
                    session = ort.InferenceSession(
                        str(path), sess_options=so, providers=["CPUExecutionProvider"]
                    )
                except Exception as cpu_exc:
                    raise ModelLoadError(f"{path}: {cpu_exc}") from cpu_exc
            else:
                raise ModelLoadError(f"{path}: {exc}") from exc
        return OnnxInstance(session)
