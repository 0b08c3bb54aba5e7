"""A bounded FIFO of inference requests that hands out batches of compatible requests."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from batchserve.errors import DeadlineExceeded, QueueFull, SchedulerStopped
from batchserve.scheduling.base import InferenceResult


@dataclass(eq=False)
class QueuedRequest:
    """One submitted request and the future its caller waits on. `inputs` is whatever the
    scheduler's batching carries (tensors, or one opaque value, or a `Deferred` until the
    worker prepares it); `key` says which requests may share a call."""

    inputs: Any
    rows: int
    key: Hashable
    deadline: float | None
    future: Future[InferenceResult] = field(default_factory=Future)
    enqueued_at: float = field(default_factory=time.monotonic)
    #: Set by the worker that prepared a deferred request: what turns its outputs into
    #: its result, and how long preparing took.
    finish: Callable[[Any], Any] | None = None
    prepare_s: float = 0.0


class RequestQueue:
    """Bounded FIFO shared by a scheduler's workers.

    `take` is where batches form: it blocks until a request is waiting, then
    returns at once with that request and the compatible ones queued behind
    it, up to `max_rows`. It waits for more only when `max_delay_s` > 0, so
    an idle worker never sits on a timer while work is waiting.
    """

    def __init__(self, max_size: int) -> None:
        self._items: deque[QueuedRequest] = deque()
        self._max_size = max_size
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def max_size(self) -> int:
        return self._max_size

    def put(self, request: QueuedRequest) -> None:
        with self._cond:
            if self._closed:
                raise SchedulerStopped("the model is shutting down and accepts no new requests")
            if len(self._items) >= self._max_size:
                self._drop_cancelled()
                if len(self._items) >= self._max_size:
                    raise QueueFull(f"queue is full ({self._max_size} requests waiting)")
            self._items.append(request)
            self._cond.notify()

    def take(
        self,
        max_rows: int,
        max_delay_s: float = 0.0,
        *,
        block: bool = True,
        idle_takers: Callable[[], int] | None = None,
    ) -> list[QueuedRequest] | None:
        """The next batch (at least one request), or None once closed and empty.

        With `block=False` it returns [] at once when nothing is waiting (a scheduler
        with work in hand only looks for more). `idle_takers`, when given, says how many
        workers (this one included) are free to take work now: the batch then holds
        at most its share of what is queued, so one worker does not take all of it
        while another core sits idle (with requests prepared on the worker, it would
        decode them all one after another).
        """
        with self._cond:
            while True:
                head = self._pop_runnable()
                if head is not None:
                    break
                if self._closed:
                    return None
                if not block:
                    return []
                self._cond.wait()
            if idle_takers is not None:
                sharing = max(1, idle_takers())
                if sharing > 1:
                    waiting = head.rows + sum(r.rows for r in self._items)
                    max_rows = min(max_rows, max(head.rows, -(-waiting // sharing)))
            batch = [head]
            rows = head.rows
            if rows < max_rows:
                rows = self._gather(batch, rows, max_rows)
                if max_delay_s > 0:
                    until = head.enqueued_at + max_delay_s
                    while rows < max_rows and not self._closed:
                        remaining = until - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                        rows = self._gather(batch, rows, max_rows)
            return batch

    def close(self) -> None:
        """Refuse new requests; waiting workers drain what is queued, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def fail_all(self, error: Exception) -> None:
        with self._cond:
            while self._items:
                request = self._items.popleft()
                if request.future.set_running_or_notify_cancel():
                    request.future.set_exception(error)

    def _gather(self, batch: list[QueuedRequest], rows: int, max_rows: int) -> int:
        """Move compatible requests from the queue into `batch`, oldest first."""
        key = batch[0].key
        kept: deque[QueuedRequest] = deque()
        while self._items and rows < max_rows:
            candidate = self._items.popleft()
            if candidate.key != key or rows + candidate.rows > max_rows:
                kept.append(candidate)
                continue
            if self._claim(candidate):
                batch.append(candidate)
                rows += candidate.rows
        # Requests passed over keep their place at the front, in order.
        self._items.extendleft(reversed(kept))
        return rows

    def _pop_runnable(self) -> QueuedRequest | None:
        while self._items:
            request = self._items.popleft()
            if self._claim(request):
                return request
        return None

    @staticmethod
    def _claim(request: QueuedRequest) -> bool:
        """Mark the request as running; False if it was cancelled or expired."""
        if not request.future.set_running_or_notify_cancel():
            return False
        if request.deadline is not None and time.monotonic() > request.deadline:
            waited = time.monotonic() - request.enqueued_at
            request.future.set_exception(
                DeadlineExceeded(f"deadline passed after {waited * 1000:.0f} ms in the queue")
            )
            return False
        return True

    def _drop_cancelled(self) -> None:
        self._items = deque(r for r in self._items if not r.future.cancelled())
