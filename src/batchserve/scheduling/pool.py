"""InstancePool: N instances, each used by one caller at a time."""

from __future__ import annotations

from collections.abc import Sequence

from batchserve.runtimes.base import ModelInstance
from batchserve.scheduling.batching import Batching
from batchserve.scheduling.workers import BatchObserver, WorkerScheduler


class InstancePool(WorkerScheduler):
    """For models that are not safe to call concurrently (a layer mutating state in
    `forward`): each instance serves one request at a time; waiting callers are queued
    first come, first served, up to `max_queue`."""

    def __init__(
        self,
        instances: Sequence[ModelInstance],
        *,
        max_queue: int = 256,
        name: str = "model",
        on_batch: BatchObserver | None = None,
        wide_instance: ModelInstance | None = None,
        batching: Batching | None = None,
    ) -> None:
        if len({id(i) for i in instances}) != len(instances):
            raise ValueError(f"{name}: a pool needs distinct instances")
        super().__init__(
            instances,
            max_batch_size=1,
            max_queue=max_queue,
            name=name,
            on_batch=on_batch,
            wide_instance=wide_instance,
            batching=batching,
        )
