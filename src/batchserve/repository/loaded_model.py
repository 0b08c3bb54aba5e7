"""One loaded version of one model: its description and the scheduler that runs it."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from batchserve.codecs.images import ImageCodec
from batchserve.codecs.text import TextCodec
from batchserve.config import ModelConfig
from batchserve.errors import InvalidInput, SchedulerStopped
from batchserve.runtimes.base import ModelInstance, TensorSpec
from batchserve.scheduling.base import InferenceResult
from batchserve.scheduling.continuous_batcher import (
    ContinuousBatcher,
    GenerationHandle,
    TokenCallback,
)
from batchserve.scheduling.factory import BuiltScheduler
from batchserve.scheduling.sampling import SamplingParams

log = logging.getLogger(__name__)

#: How many replacements a request may follow before it gives up (a chain of fast swaps).
MAX_SUCCESSOR_HOPS = 8


@dataclass(eq=False)
class LoadedModel:
    """A model version ready to serve. The server reaches the model only through this.

    When the manager swaps in a replacement it sets `successor` before it stops
    this one: a caller that took this object before the swap and submits after
    the scheduler stopped accepting is sent on to the replacement instead of
    failing. Requests this scheduler had already accepted finish here.
    """

    name: str
    version: int
    config: ModelConfig
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    built: BuiltScheduler
    labels: list[str] | None = None
    image_codec: ImageCodec | None = None
    #: Text models (task generate or embed): tokenizer and tensor names.
    text_codec: TextCodec | None = None
    resident_bytes: int = 0
    loaded_at: float = field(default_factory=time.time)
    platform: str = "onnxruntime_onnx"
    #: Every runtime instance the load created, closed when the model stops.
    instances: tuple[ModelInstance, ...] = ()
    #: Which files it was loaded from (store signatures); a change means reload.
    source: str = ""
    load_seconds: float = 0.0
    successor: LoadedModel | None = field(default=None, repr=False)

    def submit(
        self, inputs: Mapping[str, np.ndarray], deadline: float | None = None
    ) -> Future[InferenceResult]:
        model: LoadedModel = self
        for _ in range(MAX_SUCCESSOR_HOPS):
            try:
                return model.built.scheduler.submit(inputs, deadline)
            except SchedulerStopped:
                if model.successor is None:
                    raise
                model = model.successor
        raise SchedulerStopped(f"model {self.name!r} was replaced too many times in a row")

    def generate(
        self,
        prompt: Sequence[int],
        params: SamplingParams,
        *,
        deadline: float | None = None,
        on_token: TokenCallback | None = None,
    ) -> GenerationHandle:
        """Start a generation (task: generate); follows a swap as `submit` does."""
        model: LoadedModel = self
        for _ in range(MAX_SUCCESSOR_HOPS):
            scheduler = model.built.scheduler
            if not isinstance(scheduler, ContinuousBatcher):
                raise InvalidInput(f"model {self.name!r} does not generate text")
            try:
                return scheduler.generate(prompt, params, deadline=deadline, on_token=on_token)
            except SchedulerStopped:
                if model.successor is None:
                    raise
                model = model.successor
        raise SchedulerStopped(f"model {self.name!r} was replaced too many times in a row")

    @property
    def image_input(self) -> str:
        """The input an image goes to: the configured one, else the first."""
        prep = self.config.preprocessing
        return prep.input if prep and prep.input else self.inputs[0].name

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
