"""DynamicBatcher: requests arriving one at a time run as batches."""

from __future__ import annotations

from collections.abc import Sequence

from batchserve.runtimes.base import ModelInstance
from batchserve.scheduling.batching import Batching
from batchserve.scheduling.workers import BatchObserver, WorkerScheduler


class DynamicBatcher(WorkerScheduler):
    """Stacks waiting same-shape requests into batches of up to `max_batch_size` rows.

    Work-conserving: an idle worker takes whatever is waiting and runs it now,
    so batches grow only while every worker is busy. `max_delay_s` (default 0)
    lets a user trade latency for throughput by waiting for a fuller batch.
    If a batch fails, its requests are retried one by one so that only the
    bad input fails. `instances` may repeat one concurrency-safe instance to
    run several batches on it at once. `batching` says how requests share a call:
    same-shape tensors stacked (the default); with `TensorBatching(padding)`, requests
    whose shapes differ only in the model's dynamic dimensions (grouped by bucketed
    length, padded to the longest); with `ListBatching`, any requests, one value each.
    """

    def __init__(
        self,
        instances: Sequence[ModelInstance],
        *,
        max_batch_size: int,
        max_delay_s: float = 0.0,
        max_queue: int = 256,
        name: str = "model",
        on_batch: BatchObserver | None = None,
        wide_instance: ModelInstance | None = None,
        batching: Batching | None = None,
    ) -> None:
        super().__init__(
            instances,
            max_batch_size=max_batch_size,
            max_delay_s=max_delay_s,
            max_queue=max_queue,
            name=name,
            on_batch=on_batch,
            wide_instance=wide_instance,
            batching=batching,
        )
