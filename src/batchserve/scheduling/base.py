"""What every scheduler offers: `submit(inputs) -> Future`, `start()`, `stop(drain)`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InferenceResult:
    """One request's outputs (named arrays, or a Python model's own result), with where
    its time went."""

    outputs: Any
    queue_s: float
    inference_s: float
    batch_size: int
    #: A deferred request's preparation (its decode) on the worker, before inference.
    prepare_s: float = 0.0


@dataclass(frozen=True)
class SchedulerStats:
    """A snapshot for metrics and readiness."""

    queued: int
    busy_workers: int
    workers: int
    #: Continuous batching only: sequences in the running batch, and its bound.
    sequences: int | None = None
    max_sequences: int | None = None


class Scheduler(ABC):
    """Turns concurrent requests into runtime calls.

    `inputs` are named tensors with the batch dimension first (one image is shape
    [1, ...]), or for an instance whose `batch_format` is "list", one opaque value, or
    a `Deferred` that the worker running it prepares (see `deferred.py`). `deadline`
    is a `time.monotonic()` instant: a request still queued then fails with
    `DeadlineExceeded` and is never run. Cancelling the returned future before it
    runs drops the request from the queue.
    """

    @abstractmethod
    def submit(self, inputs: Any, deadline: float | None = None) -> Future[InferenceResult]: ...

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        """Refuse new work; with `drain`, finish what was accepted first."""

    @abstractmethod
    def stats(self) -> SchedulerStats: ...
