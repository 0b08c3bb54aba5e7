"""The engine under every scheduler: worker threads, each bound to a model instance,
taking batches from one bounded queue.

`SharedInstance`, `InstancePool` and `DynamicBatcher` are this engine with
different instances and batch bounds, so queueing, deadlines, cancellation,
failure isolation and draining behave the same in all three.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from batchserve.errors import BatchserveError, InferenceError, SchedulerStopped
from batchserve.runtimes.base import ModelInstance
from batchserve.scheduling.base import InferenceResult, Scheduler, SchedulerStats
from batchserve.scheduling.batching import Batching, TensorBatching
from batchserve.scheduling.deferred import Deferred
from batchserve.scheduling.request_queue import QueuedRequest, RequestQueue

log = logging.getLogger(__name__)

#: Called after every runtime call with (rows in the batch, seconds it took).
BatchObserver = Callable[[int, float], None]


class WorkerScheduler(Scheduler):
    """One worker thread per entry of `instances` (an instance may appear more than once
    when it is safe to call concurrently), each running batches of up to `max_batch_size`
    rows taken from a shared FIFO queue of at most `max_queue` requests.

    `wide_instance`, when given, is an instance using every core: a worker that finds
    itself alone (no other worker busy, nothing else queued) runs its batch there, so a
    lone request gets all the cores while a busy server keeps one narrow call per core.
    Only one worker can be alone at a time, so the wide instance is never shared.

    `batching` says what a request holds and how requests share a call (see
    `batching.py`): stacked tensors by default, one value per request for "list" instances.
    A `Deferred` request is prepared, run and finished by the worker that takes it.
    """

    def __init__(
        self,
        instances: Sequence[ModelInstance],
        *,
        max_batch_size: int = 1,
        max_delay_s: float = 0.0,
        max_queue: int = 256,
        name: str = "model",
        on_batch: BatchObserver | None = None,
        batching: Batching | None = None,
        wide_instance: ModelInstance | None = None,
    ) -> None:
        if not instances:
            raise ValueError("a scheduler needs at least one instance")
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._instances = list(instances)
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.name = name
        self._queue = RequestQueue(max_queue)
        self._on_batch = on_batch
        self._batching = batching or TensorBatching()
        self._wide = wide_instance
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._started = False

    # -- Scheduler -------------------------------------------------------------------

    def submit(self, inputs: Any, deadline: float | None = None) -> Future[InferenceResult]:
        if isinstance(inputs, Deferred):
            rows, key = self._batching.admit_deferred(inputs)
        else:
            rows, key = self._batching.admit(inputs)
        request = QueuedRequest(inputs=inputs, rows=rows, key=key, deadline=deadline)
        self._queue.put(request)
        return request.future

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for i, instance in enumerate(self._instances):
            thread = threading.Thread(
                target=self._work, args=(instance,), name=f"{self.name}-worker-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        self._queue.close()
        if not drain:
            self._queue.fail_all(SchedulerStopped("the model was stopped before this request ran"))
        end = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if end is None else max(0.0, end - time.monotonic()))
        # Whatever is left (a drain that ran out of time) fails rather than hangs.
        self._queue.fail_all(SchedulerStopped("the model stopped before this request ran"))

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            queued=len(self._queue), busy_workers=self._busy, workers=len(self._instances)
        )

    @property
    def queue_capacity(self) -> int:
        return self._queue.max_size

    # -- workers ---------------------------------------------------------------------

    def _idle_workers(self) -> int:
        """Workers not running a batch now (the one asking included); read unlocked: a
        batch's size bound needs an estimate, not an exact count."""
        return len(self._instances) - self._busy

    def _work(self, instance: ModelInstance) -> None:
        while True:
            batch = self._queue.take(
                self.max_batch_size, self.max_delay_s, idle_takers=self._idle_workers
            )
            if batch is None:
                return
            with self._busy_lock:
                self._busy += 1
                alone = self._busy == 1 and len(self._queue) == 0
            runner = self._wide if alone and self._wide is not None else instance
            try:
                self._run_batch(runner, batch)
            except BaseException as exc:  # never let a worker die with futures unresolved
                log.exception("%s: worker failed", self.name)
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def _run_batch(self, instance: ModelInstance, batch: list[QueuedRequest]) -> None:
        taken = time.monotonic()
        batch = self._prepare(batch)
        if not batch:
            return
        started = time.monotonic()
        try:
            inputs = [r.inputs for r in batch]
            outputs = instance.run(self._batching.combine(inputs))
            pieces = self._batching.separate(outputs, inputs, [r.rows for r in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(_as_domain_error(exc))
                return
            # One bad input must not fail its neighbours: retry each request alone.
            log.info("%s: batch of %d failed (%s); retrying one by one", self.name, len(batch), exc)
            for request in batch:
                self._run_batch(instance, [request])
            return
        elapsed = time.monotonic() - started
        rows = sum(r.rows for r in batch)
        if self._on_batch is not None:
            self._on_batch(rows, elapsed)
        for request, outputs_for_request in zip(batch, pieces, strict=True):
            if request.finish is not None:
                try:
                    outputs_for_request = request.finish(outputs_for_request)
                except Exception as exc:
                    request.future.set_exception(_as_domain_error(exc))
                    continue
            request.future.set_result(
                InferenceResult(
                    outputs=outputs_for_request,
                    queue_s=max(0.0, taken - request.enqueued_at),
                    inference_s=elapsed,
                    batch_size=rows,
                    prepare_s=request.prepare_s,
                )
            )

    def _prepare(self, batch: list[QueuedRequest]) -> list[QueuedRequest]:
        """Make the inputs of the batch's deferred requests, here on the worker; a request
        whose `prepare` fails, or whose inputs are not what it declared, fails alone."""
        ready = []
        for request in batch:
            deferred = request.inputs
            if not isinstance(deferred, Deferred):
                ready.append(request)
                continue
            started = time.monotonic()
            try:
                inputs = deferred.prepare()
                rows, key = self._batching.admit(inputs)
            except Exception as exc:
                request.future.set_exception(_as_domain_error(exc))
                continue
            if (rows, key) != (request.rows, request.key):
                request.future.set_exception(
                    InferenceError(f"prepared inputs {key} differ from the declared {request.key}")
                )
                continue
            request.inputs = inputs
            request.finish = deferred.finish
            request.prepare_s = time.monotonic() - started
            ready.append(request)
        return ready


def _as_domain_error(exc: Exception) -> Exception:
    if isinstance(exc, BatchserveError):
        return exc
    return InferenceError(f"{type(exc).__name__}: {exc}")
