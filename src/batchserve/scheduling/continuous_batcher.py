"""ContinuousBatcher: iteration-level scheduling for models that run step by step.

Request-level batching runs a batch of generations until its longest member
finishes: a short request waits for the longest, and a request that arrives
meanwhile waits for the whole batch. Here one loop thread runs the model one step
at a time, and between any two steps sequences join (their prompt is prefilled in
one call) and leave (end token, token limit, deadline, cancellation), so a slot
freed by one request is taken by the next at once.

Each iteration:

1. admit queued requests into the free slots (FIFO; a request whose deadline
   passed in the queue fails with `DeadlineExceeded` and never runs);
2. drop running sequences that were cancelled or ran past their deadline;
3. prefill the admitted ones in one call: each gets its first token;
4. one decode call for the sequences that were already running: one token each;
5. emit every new token to its request's `on_token`, finish the sequences that
   are done, and resolve their futures.

The queue is the schedulers' `RequestQueue`: bounded (`QueueFull`), FIFO,
deadline-checked when a request is taken, cancelled requests skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from batchserve.errors import (
    BatchserveError,
    DeadlineExceeded,
    InferenceError,
    InvalidInput,
    SchedulerStopped,
)
from batchserve.runtimes.step_model import SequenceState, StepModel
from batchserve.scheduling.base import InferenceResult, Scheduler, SchedulerStats
from batchserve.scheduling.request_queue import QueuedRequest, RequestQueue
from batchserve.scheduling.sampling import Sampler, SamplingParams
from batchserve.scheduling.workers import BatchObserver

log = logging.getLogger(__name__)

#: Called from the loop thread with each new token; it must return quickly.
TokenCallback = Callable[[int], None]
Policy = Literal["continuous", "request"]
FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class GenerationResult:
    """A finished generation, with where its time went (all from submission)."""

    tokens: list[int]
    finish_reason: FinishReason
    prompt_tokens: int
    queue_s: float  # until admitted into the running batch
    first_token_s: float | None  # time to first token; None when none came
    total_s: float

    @property
    def time_per_output_token_s(self) -> float | None:
        """Mean time between tokens after the first (the decode speed a client sees)."""
        if self.first_token_s is None or len(self.tokens) < 2:
            return None
        return (self.total_s - self.first_token_s) / (len(self.tokens) - 1)


@dataclass(eq=False)
class _GenerationRequest(QueuedRequest):
    """A queued generation: the prompt, how to sample, where tokens go."""

    prompt: Sequence[int] = ()
    params: SamplingParams = field(default_factory=lambda: SamplingParams(max_tokens=1))
    on_token: TokenCallback | None = None
    cancelled: bool = False


class GenerationHandle:
    """What `ContinuousBatcher.generate` returns: the future of the whole result, and
    `cancel()`, which frees the request's slot at the next step (or drops it from the
    queue). Tokens arrive one by one through the `on_token` given to `generate`."""

    def __init__(self, request: _GenerationRequest) -> None:
        self._request = request

    @property
    def future(self) -> Future[GenerationResult]:
        return self._request.future  # type: ignore[return-value]

    def cancel(self) -> None:
        if not self._request.future.cancel():
            self._request.cancelled = True  # running: the loop drops it before the next step

    def result(self, timeout: float | None = None) -> GenerationResult:
        return self.future.result(timeout)


@dataclass(eq=False)
class _Running:
    """A request in the running batch."""

    request: _GenerationRequest
    sequence: SequenceState
    sampler: Sampler
    admitted_at: float
    first_token_at: float | None = None


class ContinuousBatcher(Scheduler):
    """Runs a `StepModel` for up to `max_batch_size` sequences at once, one step per
    runtime call, sequences joining and leaving at every step.

    `policy="request"` is request-level batching, kept for comparison: requests are
    admitted only when the running batch is empty, so a batch runs until its last
    member finishes (members still finish, and answer, one by one). With
    `max_batch_size=1` either policy runs one request at a time.
    """

    def __init__(
        self,
        model: StepModel,
        *,
        max_batch_size: int = 32,
        max_queue: int = 256,
        max_prompt_tokens: int = 2048,
        default_max_tokens: int = 128,
        policy: Policy = "continuous",
        name: str = "model",
        on_step: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_prompt_tokens = max_prompt_tokens
        self.default_max_tokens = default_max_tokens
        self.policy = policy
        self.name = name
        self._queue = RequestQueue(max_queue)
        self._on_step = on_step
        self._active: list[_Running] = []
        self._thread: threading.Thread | None = None
        self._abort = threading.Event()

    # -- generation ------------------------------------------------------------------

    def generate(
        self,
        prompt: Sequence[int],
        params: SamplingParams,
        *,
        deadline: float | None = None,
        on_token: TokenCallback | None = None,
    ) -> GenerationHandle:
        """Queue a generation; raises `QueueFull`, `SchedulerStopped` or `InvalidInput`."""
        tokens = [int(t) for t in prompt]
        if len(tokens) > self.max_prompt_tokens:
            raise InvalidInput(
                f"the prompt has {len(tokens)} tokens; this model takes at most "
                f"{self.max_prompt_tokens}"
            )
        vocab = self.model.vocab_size
        if any(not 0 <= t < vocab for t in tokens):
            raise InvalidInput(f"prompt tokens must be between 0 and {vocab - 1}")
        if not tokens and self.model.bos_token is None:
            raise InvalidInput("the prompt is empty and this model has no start token")
        request = _GenerationRequest(
            inputs={},
            rows=1,
            key=None,
            deadline=deadline,
            prompt=tokens,
            params=params,
            on_token=on_token,
        )
        self._queue.put(request)
        return GenerationHandle(request)

    # -- Scheduler -------------------------------------------------------------------

    def submit(
        self, inputs: Mapping[str, np.ndarray], deadline: float | None = None
    ) -> Future[InferenceResult]:
        """The tensor contract: {"tokens": int [1, T]} in, greedy {"tokens": [1, n]} out."""
        prompt = inputs.get(self.model.names.tokens)
        if prompt is None or prompt.ndim != 2 or prompt.shape[0] != 1:
            raise InvalidInput(
                f"a generation takes one prompt as {self.model.names.tokens!r} [1, T]"
            )
        handle = self.generate(
            prompt[0].tolist(), SamplingParams(self.default_max_tokens), deadline=deadline
        )
        result: Future[InferenceResult] = Future()

        def done(future: Future[GenerationResult]) -> None:
            if future.cancelled():
                result.cancel()
            elif future.exception() is not None:
                result.set_exception(future.exception())  # type: ignore[arg-type]
            else:
                g = future.result()
                result.set_result(
                    InferenceResult(
                        outputs={self.model.names.tokens: np.array([g.tokens], np.int64)},
                        queue_s=g.queue_s,
                        inference_s=g.total_s - g.queue_s,
                        batch_size=1,
                    )
                )

        handle.future.add_done_callback(done)
        return result

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"{self.name}-steps", daemon=True
            )
            self._thread.start()

    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        self._queue.close()
        if not drain:
            self._queue.fail_all(SchedulerStopped("the model was stopped before this request ran"))
            self._abort.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # a drain that ran out of time
                self._abort.set()
                self._thread.join(5)
        self._queue.fail_all(SchedulerStopped("the model stopped before this request ran"))

    def stats(self) -> SchedulerStats:
        running = len(self._active)
        return SchedulerStats(
            queued=len(self._queue),
            busy_workers=1 if running else 0,
            workers=1,
            sequences=running,
            max_sequences=self.max_batch_size,
        )

    @property
    def queue_capacity(self) -> int:
        return self._queue.max_size

    # -- the loop --------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._abort.is_set():
                room = self.max_batch_size - len(self._active)
                if self.policy == "request" and self._active:
                    room = 0
                taken: list[QueuedRequest] | None = []
                if room > 0:
                    taken = self._queue.take(room, block=not self._active)
                    if taken is None and not self._active:
                        return  # closed, drained
                self._iterate([self._admit(r) for r in taken or ()])  # type: ignore[arg-type]
        except BaseException as exc:  # never leave a future unresolved
            log.exception("%s: the generation loop failed", self.name)
            self._fail(
                self._active, exc if isinstance(exc, Exception) else SchedulerStopped("stopped")
            )
            self._active = []
            raise
        finally:
            if self._active:
                self._fail(self._active, SchedulerStopped("the model stopped during generation"))
                self._active = []

    def _admit(self, request: _GenerationRequest) -> _Running:
        return _Running(
            request=request,
            sequence=self.model.init_state(request.prompt),
            sampler=Sampler(request.params, self.model.eos_token),
            admitted_at=time.monotonic(),
        )

    def _iterate(self, new: list[_Running]) -> None:
        now = time.monotonic()
        running = []
        for r in self._active:
            if r.request.cancelled:
                self._finish(r, "cancelled", now)
            elif r.request.deadline is not None and now > r.request.deadline:
                r.request.future.set_exception(
                    DeadlineExceeded(
                        f"deadline passed after {len(r.sequence.generated)} generated tokens"
                    )
                )
            else:
                running.append(r)
        # The new ones join the running batch after their prefill, at the next step.
        self._active = running + new
        if new:
            new = self._run(new, prefill=True)
        if running:
            running = self._run(running, prefill=False)
        self._active = running + new

    def _run(self, batch: list[_Running], *, prefill: bool) -> list[_Running]:
        """One runtime call for `batch`; returns the sequences still going."""
        started = time.monotonic()
        try:
            logits = self.model.step([r.sequence for r in batch])
        except Exception as exc:
            if prefill and len(batch) > 1:
                # One bad prompt must not fail its neighbours: prefill each alone.
                return [kept for r in batch for kept in self._run([r], prefill=True)]
            self._fail(batch, exc)
            return []
        if self._on_step is not None and not prefill:
            self._on_step(len(batch), time.monotonic() - started)
        greedy = np.argmax(logits, axis=1)
        now = time.monotonic()
        still: list[_Running] = []
        for row, r in enumerate(batch):
            token = r.sampler(logits[row], int(greedy[row]))
            limit = r.request.params.max_tokens
            self.model.append(r.sequence, token)
            reason = self.model.finished(r.sequence, token, limit)
            if reason == "stop" and r.request.params.ignore_eos:
                reason = None
            if token != self.model.eos_token:
                if r.first_token_at is None:
                    r.first_token_at = now
                if not self._emit(r, token):
                    self._finish(r, "cancelled", now)
                    continue
            if reason is not None:
                self._finish(r, reason, now)
            else:
                still.append(r)
        return still

    @staticmethod
    def _emit(r: _Running, token: int) -> bool:
        if r.request.on_token is None:
            return True
        try:
            r.request.on_token(token)
            return True
        except Exception:  # a listener that is gone (closed event loop): stop generating
            log.info("a token listener failed; the request is cancelled", exc_info=True)
            return False

    @staticmethod
    def _finish(r: _Running, reason: FinishReason, now: float) -> None:
        enqueued = r.request.enqueued_at
        r.request.future.set_result(
            GenerationResult(
                tokens=list(r.sequence.generated),
                finish_reason=reason,
                prompt_tokens=len(r.request.prompt),
                queue_s=r.admitted_at - enqueued,
                first_token_s=None if r.first_token_at is None else r.first_token_at - enqueued,
                total_s=now - enqueued,
            )
        )

    @staticmethod
    def _fail(batch: list[_Running], exc: BaseException) -> None:
        error = (
            exc
            if isinstance(exc, BatchserveError)
            else InferenceError(f"{type(exc).__name__}: {exc}")
        )
        for r in batch:
            if not r.request.future.done():
                r.request.future.set_exception(error)
