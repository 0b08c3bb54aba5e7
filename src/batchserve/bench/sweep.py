"""A sweep: its steps run one after the other, each with the server's memory sampled.

Shared by `batchserve bench` and `bench/compare.py`, so that the comparison measures
every server with exactly the command's generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from batchserve.bench.loadgen import (
    Arrival,
    LoadTarget,
    StepProgress,
    closed_loop,
    event_loop,
    open_loop,
)
from batchserve.bench.memory import MemoryProbe, MemorySampler
from batchserve.bench.stats import StepResult


@dataclass(frozen=True)
class StepPlan:
    """One step to run: a closed loop of `concurrency` clients, or an open loop at `rate`."""

    mode: Literal["closed", "open"]
    concurrency: int | None = None
    rate: float | None = None

    @classmethod
    def closed(cls, concurrency: int) -> StepPlan:
        return cls("closed", concurrency=concurrency)

    @classmethod
    def open(cls, rate: float) -> StepPlan:
        return cls("open", rate=rate)


@dataclass(frozen=True)
class LoadSettings:
    """How each step runs; every field is a bound (seconds, requests) of the run."""

    duration: float
    warmup: float
    timeout: float = 30.0
    arrival: Arrival = "poisson"
    seed: int = 0
    max_outstanding: int = 512


def auto_warmup(duration: float) -> float:
    """A tenth of the step, between 0.5 s and 5 s: enough to fill queues and pools."""
    return min(5.0, max(0.5, 0.1 * duration))


def run_sweep(
    target: LoadTarget,
    plans: Sequence[StepPlan],
    settings: LoadSettings,
    *,
    memory: MemoryProbe | None = None,
    progress: StepProgress | None = None,
    on_step_start: Callable[[StepPlan], None] | None = None,
    on_step_end: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """Run every step; a Ctrl-C ends the sweep early and returns the steps completed."""
    progress = progress or StepProgress()
    sampler = MemorySampler(memory)
    results: list[StepResult] = []
    with event_loop() as run:
        for plan in plans:
            if on_step_start:
                on_step_start(plan)
            sampler.start()
            try:
                if plan.mode == "closed":
                    assert plan.concurrency is not None
                    result = run(
                        closed_loop(
                            target,
                            clients=plan.concurrency,
                            duration=settings.duration,
                            warmup=settings.warmup,
                            timeout=settings.timeout,
                            progress=progress,
                        )
                    )
                else:
                    assert plan.rate is not None
                    result = run(
                        open_loop(
                            target,
                            rate=plan.rate,
                            duration=settings.duration,
                            warmup=settings.warmup,
                            timeout=settings.timeout,
                            arrival=settings.arrival,
                            seed=settings.seed,
                            max_outstanding=settings.max_outstanding,
                            progress=progress,
                        )
                    )
            except KeyboardInterrupt:
                sampler.stop()
                break
            result.rss_bytes, result.rss_peak_bytes = sampler.stop()
            results.append(result)
            if on_step_end:
                on_step_end(result)
    return results
