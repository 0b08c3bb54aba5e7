"""SharedInstance: many concurrent calls on one instance that allows it."""

from __future__ import annotations

from batchserve.runtimes.base import ModelInstance
from batchserve.scheduling.batching import Batching
from batchserve.scheduling.workers import BatchObserver, WorkerScheduler


class SharedInstance(WorkerScheduler):
    """One concurrency-safe instance called by up to `max_in_flight` threads at once.

    The weights live once in memory; the bound on calls in flight keeps the
    cores from being oversubscribed. Callers past the bound wait in the queue.
    """

    def __init__(
        self,
        instance: ModelInstance,
        *,
        max_in_flight: int = 2,
        max_queue: int = 256,
        name: str = "model",
        on_batch: BatchObserver | None = None,
        wide_instance: ModelInstance | None = None,
        batching: Batching | None = None,
    ) -> None:
        if not instance.concurrency_safe:
            raise ValueError(
                f"{name}: this instance is not safe to call concurrently; use an InstancePool"
            )
        super().__init__(
            [instance] * max_in_flight,
            max_batch_size=1,
            max_queue=max_queue,
            name=name,
            on_batch=on_batch,
            wide_instance=wide_instance,
            batching=batching,
        )
