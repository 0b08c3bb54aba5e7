"""The one small interface every runtime implements.

A `Runtime` is a framework: it declares what the rest of batchserve needs to know
about it (its `backend:` name, the v2 platform, its default artifact and the files
it recognises, whether threads are set per process or per instance, whether an
instance is safe to share by default, its own `options:` in model.yaml) and loads
an artifact into a `ModelInstance`. An instance describes its inputs and outputs,
runs one batch, and says whether several threads may call it at once. Neither
knows anything of queues, HTTP or S3.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from batchserve.datatypes import TensorSpec
from batchserve.errors import ConfigError, InvalidInput

#: How an instance takes a batch: a mapping of stacked tensors, or a list holding one
#: opaque value per request (a Python model's own decoded inputs).
BatchFormat = Literal["tensors", "list"]


class NoOptions(BaseModel):
    """A runtime without options of its own: `options:` must be empty."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class RuntimeOptions:
    """How to load an instance: what every runtime gets, plus its own validated options."""

    intra_op_threads: int | None = None
    inter_op_threads: int = 1
    device: str = "cpu"
    #: The operator's trust: unpickling Python objects, running the model's own code.
    allow_pickle: bool = False
    allow_code: bool = False
    #: Declared in model.yaml; used where the artifact does not describe itself.
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None
    #: The folder holding model.yaml (where a Python model's code lives); None for a bare file.
    model_dir: Path | None = None
    #: model.yaml's `options:`, as the runtime's `Options` model validated them
    #: (None: the runtime's defaults).
    options: BaseModel | None = None


@dataclass(frozen=True)
class CustomFormat:
    """A model's own request and response format on `/v1/.../predict` (a Python model's
    `decode` and `encode`); either may be None: then the body is JSON, and the output is
    made JSON-able. With `takes_images`, `decode` gets the image bytes from any of the
    server's image envelopes (raw, multipart, JSON `url` / `image_b64`)."""

    decode: Callable[[bytes, str], Any] | None = None
    encode: Callable[[Any], Any] | None = None
    takes_images: bool = False


class ModelInstance(ABC):
    """One loaded copy of a model."""

    #: May several threads call `run` on this one instance at the same time?
    concurrency_safe: bool = False
    #: The runtime knows one instance must never be called from two threads at once
    #: (a LiteRT interpreter): model.yaml and `batchserve check` cannot say otherwise.
    never_shared: ClassVar[bool] = False
    #: "tensors": `run` takes stacked tensors; "list": one value per request.
    batch_format: ClassVar[BatchFormat] = "tensors"

    #: The tensors one call takes and returns, batch dimension first (-1: any size); a
    #: runtime sets them when it loads the model.
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    @abstractmethod
    def run(self, inputs: Any) -> Any:
        """Run one batch. With `batch_format` "tensors": a mapping of name -> array with
        the batch dimension first, and every output keeps it. With "list": a list of
        per-request values in, a list of as many results out, in order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the instance holds; the default holds nothing special."""

    def custom_format(self) -> CustomFormat | None:
        """The model's own /predict format, or None: it has none (a tensor model, served on
        /predict only through model.yaml's `preprocessing`). It stays usable while the
        instance is open, from several threads at once."""
        return None

    def example_request(self, seed: int) -> Any | None:
        """One request's inputs, made up for warm-up and `batchserve check`, when the model
        knows better than random tensors of its declared inputs (a Python model's
        `example`); None: use those. Different seeds give different inputs."""
        return None

    def python_state(self) -> object | None:
        """The Python object whose attributes a call may write (a torch module, a Python
        model's object), for `batchserve check`; None when the runtime holds none."""
        return None

    def describe(self) -> dict[str, list[dict[str, object]]]:
        """Inputs and outputs as plain data (v2 metadata shape)."""
        return {
            "inputs": [t.metadata() for t in self.inputs],
            "outputs": [t.metadata() for t in self.outputs],
        }


class Runtime(ABC):
    """A framework: loads artifacts of its kind into instances.

    The class attributes are what the loader, the safety check and the scheduler
    factory ask instead of comparing backend names.
    """

    #: The `backend:` value in model.yaml.
    name: ClassVar[str]
    #: The v2 metadata `platform` (Triton's names where Triton has one).
    platform: ClassVar[str]
    #: The file (or folder) in a version folder when model.yaml names no `artifact`.
    default_artifact: ClassVar[str]
    #: Artifact suffixes it recognises, for `batchserve check FILE`.
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: True when the framework's intra-op thread count is one setting for the whole
    #: process (PyTorch, TensorFlow): then threads are not profiled per instance.
    threads_per_process: ClassVar[bool] = False
    #: Whether one instance may serve many threads when model.yaml (or `batchserve
    #: check`) says nothing; the loaded instance's own `concurrency_safe` has the last word.
    shared_by_default: ClassVar[bool] = False
    #: model.yaml's `options:` for this runtime.
    Options: ClassVar[type[BaseModel]] = NoOptions

    @classmethod
    def parse_options(cls, raw: Mapping[str, object] | None) -> BaseModel:
        """Validate model.yaml's `options:`; a ConfigError names each bad field."""
        try:
            return cls.Options.model_validate(dict(raw or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"options.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"backend {cls.name!r}: {problems}") from None

    @classmethod
    def recognises(cls, path: Path) -> bool:
        """Whether `path` looks like an artifact of this runtime (by its suffix)."""
        return path.suffix.lower() in cls.suffixes

    @abstractmethod
    def load(self, path: Path, options: RuntimeOptions) -> ModelInstance: ...

    def options_of(self, options: RuntimeOptions) -> Any:
        """The runtime's own options from `options` (its defaults when none were given)."""
        if options.options is None:
            return self.Options()
        if not isinstance(options.options, self.Options):
            raise TypeError(f"{self.name}: options must be {self.Options.__name__}")
        return options.options


def check_batch(specs: Sequence[TensorSpec], inputs: Mapping[str, object]) -> None:
    """Refuse a batch that does not fit the model's inputs, before the framework sees it.

    Names, dtypes, ranks and fixed dimensions must match, and no dimension may be empty.
    For frameworks that check loosely and fail hard (TensorFlow aborts the whole process
    on a convolution input of the wrong rank), this is what keeps a bad request the
    caller's error.
    """
    expected = [spec.name for spec in specs]
    if sorted(inputs) != sorted(expected):
        raise InvalidInput(f"inputs {sorted(inputs)} given; the model takes {expected}")
    for spec in specs:
        array = inputs[spec.name]
        if not isinstance(array, np.ndarray):
            raise InvalidInput(f"input {spec.name!r}: expected a tensor")
        strings = spec.dtype.kind == "O"  # a string tensor takes bytes or str objects
        fits = array.dtype.kind in "OSU" if strings else array.dtype == spec.dtype
        if not fits:
            raise InvalidInput(f"input {spec.name!r}: dtype {array.dtype}, expected {spec.dtype}")
        if not spec.accepts(array.shape):
            raise InvalidInput(
                f"input {spec.name!r}: shape {list(array.shape)}, expected {list(spec.shape)} "
                "(-1 is any size)"
            )
        if 0 in array.shape:
            raise InvalidInput(f"input {spec.name!r}: shape {list(array.shape)} is empty")


class ProcessThreads:
    """A framework's intra-op thread count that is one setting for the whole process
    (PyTorch, TensorFlow): setting it per load or per call would make instances fight
    over it, so the first load that asks decides, once. A later load asking for another
    count keeps the first, with one warning per count."""

    def __init__(self, framework: str, apply: Callable[[int], None], log: logging.Logger) -> None:
        self.framework = framework
        self._apply = apply
        self._log = log
        self._lock = threading.Lock()
        self._set: int | None = None
        self._warned: set[int] = set()

    def configure(self, threads: int | None) -> int | None:
        """Set the count unless it is set already; returns the count in force."""
        if threads is None:
            return self._set
        with self._lock:
            if self._set is None:
                self._apply(threads)
                self._set = threads
            elif threads != self._set and threads not in self._warned:
                self._warned.add(threads)
                self._log.warning(
                    "%s intra-op threads are process-wide and already set to %d; "
                    "ignoring a request for %d",
                    self.framework,
                    self._set,
                    threads,
                )
            return self._set
