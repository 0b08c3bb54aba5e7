"""Admission: how many requests of one model may hold decoded tensors at once.

A decoded 224x224 image is 0.6 MB against about 0.1 MB of JPEG. Without a bound,
a burst of clients would all decode first and then wait in the scheduler's queue
holding tensors, and memory would grow with the queue. So a request decodes only
once it holds a slot; the ones waiting for a slot hold just their encoded body,
and past `max_waiting` they are refused at once (503) like a full queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request

from batchserve.errors import QueueFull
from batchserve.repository.loaded_model import LoadedModel
from batchserve.server.context import AppContext, context


class Admission:
    """A fair (FIFO) bound on the requests of one model between decode and result."""

    def __init__(self, limit: int, max_waiting: int) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self._slots = asyncio.Semaphore(limit)
        self._waiting = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked() and self._waiting >= self.max_waiting:
            raise QueueFull(
                f"queue is full ({self.max_waiting} requests waiting to be decoded and run)"
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


def admission_for(request: Request, model: LoadedModel) -> Admission:
    """The model version's admission (see `model_admission`)."""
    return model_admission(context(request), model)


def model_admission(ctx: AppContext, model: LoadedModel) -> Admission:
    """The model version's admission, made on first use (all on the event loop: no lock);
    one per version, shared by its HTTP and gRPC requests.

    Kept per loaded version, not per name and number: a reload (a changed model.yaml)
    is a new `LoadedModel`, so its new bounds take effect at once, and the table
    forgets a version once nothing refers to it any more."""
    admission = ctx.admissions.get(model)
    if admission is None:
        # Enough in flight to keep every worker's next batch decoded and waiting.
        limit = 2 * model.workers * model.max_batch_size + ctx.cpu_threads
        admission = Admission(limit, model.config.scheduler.max_queue)
        ctx.admissions[model] = admission
    return admission
