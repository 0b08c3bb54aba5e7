"""One loaded version of one model: what the server reaches a model through, and nothing else.

`LoadedModel` is the boundary between the server and everything below it: the
server asks it for the model's description (`inputs`, `outputs`, `platform`), its
formats (`codec`), its shape (`workers`, `max_batch_size`, `stats()`), and hands it
work (`submit`, `generate`). It never touches a scheduler or a runtime instance.
The scheduling types that appear in this API are re-exported here, so the server
imports them from the boundary, not from `scheduling/`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from batchserve.codecs.model_codec import ModelCodec
from batchserve.config import ModelConfig
from batchserve.datatypes import TensorSpec
from batchserve.errors import InvalidInput, SchedulerStopped
from batchserve.runtimes.base import ModelInstance
from batchserve.scheduling.base import InferenceResult, SchedulerStats
from batchserve.scheduling.continuous_batcher import (
    ContinuousBatcher,
    GenerationHandle,
    GenerationResult,
    TokenCallback,
)
from batchserve.scheduling.deferred import DeclaredTensor, Deferred
from batchserve.scheduling.factory import BuiltScheduler
from batchserve.scheduling.sampling import SamplingParams

__all__ = [
    "DeclaredTensor",
    "Deferred",
    "GenerationHandle",
    "GenerationResult",
    "InferenceResult",
    "LoadedModel",
    "SamplingParams",
    "SchedulerStats",
    "TokenCallback",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many replacements a request may follow before it gives up (a chain of fast swaps).
MAX_SUCCESSOR_HOPS = 8


@dataclass(eq=False)
class LoadedModel:
    """A model version ready to serve.

    When the manager swaps in a replacement it sets `successor` before it stops
    this one: a caller that took this object before the swap and submits after
    the scheduler stopped accepting is sent on to the replacement instead of
    failing. Requests this scheduler had already accepted finish here.
    """

    name: str
    version: int
    config: ModelConfig
    #: The tensors the model is served with (a text model's are text tensors).
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    built: BuiltScheduler = field(repr=False)
    codec: ModelCodec = field(default_factory=ModelCodec)
    #: The v2 metadata platform ("onnxruntime_onnx", "pytorch_libtorch", ...).
    platform: str = ""
    resident_bytes: int = 0
    loaded_at: float = field(default_factory=time.time)
    #: Every runtime instance the load created, closed when the model stops.
    instances: tuple[ModelInstance, ...] = field(default=(), repr=False)
    #: Which files it was loaded from (store signatures); a change means reload.
    source: str = ""
    load_seconds: float = 0.0
    successor: LoadedModel | None = field(default=None, repr=False)

    # -- its shape, for admission, metrics and v2 config -----------------------------

    @property
    def workers(self) -> int:
        """Runtime calls that run at once."""
        return self.built.layout.workers

    @property
    def max_batch_size(self) -> int:
        """Rows one runtime call may hold (sequences, for a generation model)."""
        return self.built.layout.max_batch_size

    @property
    def scheduling(self) -> str:
        """How it runs, for people: "batch: 2 worker(s) x 1 thread(s), max batch 8"."""
        layout = self.built.layout
        return (
            f"{self.built.kind}: {layout.workers} worker(s) x {layout.threads} thread(s), "
            f"max batch {layout.max_batch_size}"
        )

    def output_labels(self) -> dict[str, list[str]] | None:
        """Class labels by output name, for the v2 classification extension."""
        labels = self.codec.labels
        return {spec.name: labels for spec in self.outputs} if labels else None

    def stats(self) -> SchedulerStats:
        """Queue depth and busy workers now."""
        return self.built.scheduler.stats()

    # -- work ------------------------------------------------------------------------

    def submit(self, inputs: Any, deadline: float | None = None) -> Future[InferenceResult]:
        """Queue one request (tensors with the batch dimension first, a Python model's
        own decoded value, or a `Deferred` that the worker running it prepares);
        `deadline` is a `time.monotonic()` instant."""
        return self._following_swaps(lambda model: model.built.scheduler.submit(inputs, deadline))

    def generate(
        self,
        prompt: Sequence[int],
        params: SamplingParams,
        *,
        deadline: float | None = None,
        on_token: TokenCallback | None = None,
    ) -> GenerationHandle:
        """Start a generation (task: generate)."""

        def start(model: LoadedModel) -> GenerationHandle:
            scheduler = model.built.scheduler
            if not isinstance(scheduler, ContinuousBatcher):
                raise InvalidInput(f"model {self.name!r} does not generate text")
            return scheduler.generate(prompt, params, deadline=deadline, on_token=on_token)

        return self._following_swaps(start)

    def _following_swaps(self, call: Callable[[LoadedModel], T]) -> T:
        """`call(self)`, or on its successor when this version stopped accepting work
        because a replacement was swapped in."""
        model: LoadedModel = self
        for _ in range(MAX_SUCCESSOR_HOPS):
            try:
                return call(model)
            except SchedulerStopped:
                if model.successor is None:
                    raise
                model = model.successor
        raise SchedulerStopped(f"model {self.name!r} was replaced too many times in a row")

    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop for good: refuse new work, finish (with `drain`) what was accepted, then
        release the instances and give their memory back."""
        self.built.scheduler.stop(drain=drain, timeout=timeout)
        for instance in self.instances:
            instance.close()
        self.instances = ()
        release_freed_memory()


def release_freed_memory() -> None:
    """Hand freed heap back to the operating system.

    glibc keeps freed memory in its arenas, so without this an unloaded model's
    weights stay in the process's resident size and a memory budget would
    protect nothing. A no-op where the C library has no `malloc_trim`.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
