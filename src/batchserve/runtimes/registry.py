"""Which runtimes exist, by `backend:` name, imported only when a model asks for one.

The built-in runtimes are lazy import strings (as the CLI's subcommands are), so
serving an ONNX model never imports torch or TensorFlow. A third-party package adds
a backend without touching batchserve by declaring an entry point:

    [project.entry-points."batchserve.runtimes"]
    mybackend = "my_package.runtime:MyRuntime"

A built-in name whose framework is not installed is reported with the extra that
brings it (`pip install 'batchserve[tf]'`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from batchserve.errors import ModelLoadError
from batchserve.runtimes.base import Runtime

ENTRY_POINT_GROUP = "batchserve.runtimes"


@dataclass(frozen=True)
class RuntimeEntry:
    """Where a runtime's class lives, and what it needs installed."""

    target: str  # "package.module:Class"
    #: The batchserve extra that installs its framework (None: in the base install).
    extra: str | None = None
    #: The top-level module whose presence means the framework is installed.
    requires: str | None = None

    def installed(self) -> bool:
        return self.requires is None or importlib.util.find_spec(self.requires) is not None


#: The built-in backends, in the order `batchserve check FILE` tries them.
BUILTIN: dict[str, RuntimeEntry] = {
    "onnx": RuntimeEntry("batchserve.runtimes.onnx:OnnxRuntime"),
    "torch": RuntimeEntry("batchserve.runtimes.torch:TorchRuntime", "torch", "torch"),
    "python": RuntimeEntry("batchserve.runtimes.python:PythonRuntime"),
    "tensorflow": RuntimeEntry(
        "batchserve.runtimes.tensorflow:TensorflowRuntime", "tf", "tensorflow"
    ),
    "tflite": RuntimeEntry("batchserve.runtimes.tflite:TfliteRuntime", "tflite", "ai_edge_litert"),
}


@functools.cache
def _plugins() -> dict[str, RuntimeEntry]:
    """Backends other packages declare; a built-in name cannot be taken over."""
    return {
        ep.name: RuntimeEntry(ep.value)
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.name not in BUILTIN
    }


def known_backends() -> dict[str, RuntimeEntry]:
    """Every backend name this installation knows: built-in, then from entry points."""
    return {**BUILTIN, **_plugins()}


def check_backend(name: str) -> None:
    """Raise a ValueError that says what to do when `name` cannot be served here."""
    known = known_backends()
    entry = known.get(name)
    if entry is None:
        installed = sorted(n for n, e in known.items() if e.installed())
        raise ValueError(f"unknown backend {name!r}; installed: {', '.join(installed)}")
    if not entry.installed():
        raise ValueError(
            f"backend {name!r} needs its framework ({entry.requires}): "
            f"pip install 'batchserve[{entry.extra}]'"
        )


@functools.cache
def get_runtime(name: str) -> Runtime:
    """The runtime for a backend name, imported on first use."""
    try:
        check_backend(name)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    entry = known_backends()[name]
    module_name, _, attr = entry.target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        hint = f": pip install 'batchserve[{entry.extra}]'" if entry.extra else ""
        raise ModelLoadError(f"backend {name!r} cannot be imported ({exc}){hint}") from exc
    except AttributeError as exc:
        raise ModelLoadError(f"backend {name!r}: {entry.target} does not exist") from exc
    if not (isinstance(cls, type) and issubclass(cls, Runtime)):
        raise ModelLoadError(f"backend {name!r}: {entry.target} is not a batchserve Runtime")
    return cls()


def runtime_for_artifact(path: Path) -> Runtime | None:
    """The first installed runtime that recognises `path` (by suffix or content)."""
    for name, entry in known_backends().items():
        if not entry.installed():
            continue
        try:
            runtime = get_runtime(name)
        except ModelLoadError:
            continue
        if runtime.recognises(path):
            return runtime
    return None
