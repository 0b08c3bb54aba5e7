"""The live line while a step runs, and one printed line when it ends.

The live line is redrawn by rich's own thread from the generator's plain counters
(`StepProgress`), so drawing it never runs on the load generator's event loop.
Without a terminal (CI logs, pipes) only the per-step lines are printed.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text

from batchserve.bench.loadgen import StepProgress
from batchserve.bench.stats import StepResult


class ProgressDisplay:
    """Shows `progress` live on a terminal for the whole sweep of `steps` steps."""

    def __init__(self, console: Console, progress: StepProgress, steps: int, live: bool) -> None:
        self.console = console
        self.progress = progress
        self.steps = steps
        self.step = 0
        self._live = (
            Live(
                get_renderable=self._render,
                console=console,
                refresh_per_second=4,
                transient=True,
            )
            if live and console.is_terminal
            else None
        )

    def _render(self) -> Text:
        p = self.progress
        elapsed = time.perf_counter() - p.started if p.started else 0.0
        phase = "measuring" if p.measuring else "warming up"
        width = 30
        done = min(width, int(width * elapsed / p.planned_s)) if p.planned_s else 0
        bar = "█" * done + "░" * (width - done)
        return Text.assemble(
            (f"step {self.step}/{self.steps} ", "bold"),
            (f"{p.label:>8} ", "cyan"),
            f"{bar} {elapsed:5.1f}/{p.planned_s:.0f} s {phase:<10} ",
            f"done {p.completed}  in flight {p.in_flight}  ",
            (f"errors {p.errors}", "red" if p.errors else "green"),
        )

    def begin_step(self) -> None:
        self.step += 1

    def end_step(self, result: StepResult) -> None:
        lat = result.latency_ms
        p50 = "-" if lat.p50 is None else f"{lat.p50:.1f}"
        p99 = "-" if lat.p99 is None else f"{lat.p99:.1f}"
        rss = "" if result.rss_peak_bytes is None else f"  RSS {result.rss_peak_bytes / 1e6:.0f} MB"
        errors = ", ".join(f"{k} {v}" for k, v in result.errors.items()) or "0"
        self.console.print(
            f"[bold]{result.label:>8}[/]  {result.throughput:8.1f} req/s  p50 {p50} ms  "
            f"p99 {p99} ms  requests {result.requests}  errors {errors}{rss}",
            highlight=False,
        )

    def __enter__(self) -> ProgressDisplay:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
