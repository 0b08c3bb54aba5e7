"""Runtimes: one module per framework behind the interface in `base`."""

from __future__ import annotations

from pathlib import Path

from batchserve.errors import ModelLoadError
from batchserve.runtimes.base import ModelInstance, Runtime, RuntimeOptions, TensorSpec

__all__ = [
    "ModelInstance",
    "Runtime",
    "RuntimeOptions",
    "TensorSpec",
    "get_runtime",
    "load_instance",
]


def get_runtime(backend: str) -> Runtime:
    """The runtime for a backend name; torch is imported only when asked for."""
    if backend == "onnx":
        from batchserve.runtimes.onnx import OnnxRuntime

        return OnnxRuntime()
    if backend == "torch":
        try:
            from batchserve.runtimes.torch import TorchRuntime
        except ImportError as exc:
            raise ModelLoadError(
                "backend 'torch' needs the torch extra: pip install 'batchserve[torch]'"
            ) from exc
        return TorchRuntime()
    raise ModelLoadError(f"unknown backend {backend!r}; expected 'onnx' or 'torch'")


def load_instance(backend: str, path: Path, options: RuntimeOptions) -> ModelInstance:
    """Load one instance of the artifact at `path` with the named backend."""
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    return get_runtime(backend).load(path, options)
