"""What every scheduler offers: `submit(inputs) -> Future`, `start()`, `stop(drain)`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InferenceResult:
    """One request's outputs, with where its time went."""

    outputs: dict[str, np.ndarray]
    queue_s: float
    inference_s: float
    batch_size: int


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

    `inputs` carry the batch dimension first (one image is shape [1, ...]).
    `deadline` is a `time.monotonic()` instant: a request still queued then
    fails with `DeadlineExceeded` and is never run. Cancelling the returned
    future before it runs drops the request from the queue.
    """

    @abstractmethod
    def submit(
        self, inputs: Mapping[str, np.ndarray], deadline: float | None = None
    ) -> Future[InferenceResult]: ...

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        """Refuse new work; with `drain`, finish what was accepted first."""

    @abstractmethod
    def stats(self) -> SchedulerStats: ...
