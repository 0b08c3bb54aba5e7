"""Runtimes: one module per framework behind the interface in `base`, found through
`registry` by the `backend:` name."""

from __future__ import annotations

from pathlib import Path

from batchserve.errors import ModelLoadError
from batchserve.runtimes.base import ModelInstance, Runtime, RuntimeOptions
from batchserve.runtimes.registry import get_runtime

__all__ = ["ModelInstance", "Runtime", "RuntimeOptions", "get_runtime", "load_instance"]


def load_instance(backend: str, path: Path, options: RuntimeOptions) -> ModelInstance:
    """Load one instance of the artifact at `path` with the named backend."""
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    return get_runtime(backend).load(path, options)
