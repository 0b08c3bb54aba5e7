"""Synthetic rows for the tests of bench/compare.py's report: outcomes with made-up steps."""

from __future__ import annotations

from compare_rows import Config, Outcome

from batchserve.bench.stats import LatencySummary, StepResult


def step(concurrency: int, throughput: float, p50: float = 10.0, rss_mb: float = 200.0,
         errors: int = 0) -> StepResult:  # fmt: skip
    latency = LatencySummary(p50, p50 * 1.5, p50 * 1.8, p50 * 2, p50 * 3, p50 * 1.1)
    return StepResult(
        mode="closed",
        concurrency=concurrency,
        rate=None,
        duration_s=2.0,
        warmup_s=0.5,
        requests=int(throughput * 2) + errors,
        ok=int(throughput * 2),
        errors={"status_503": errors} if errors else {},
        throughput=throughput,
        latency_ms=latency,
        client_cpu_s=0.1,
        client_cpu_per_request_us=50.0,
        client_cpu_percent=5.0,
        rss_bytes=int(rss_mb * 1e6),
        rss_peak_bytes=int(rss_mb * 1e6),
    )


def outcome(server: str, levels: dict[int, tuple[float, float]], rss_mb: float = 200.0,
            label: str = "default", group: str = "onnx") -> Outcome:  # fmt: skip
    """`levels`: concurrency -> (throughput, p50 ms)."""
    config = Config(server, label, lambda port: ["true"], group=group)  # type: ignore[arg-type]
    out = Outcome(config)
    out.steps = [step(c, thr, p50, rss_mb) for c, (thr, p50) in levels.items()]
    out.server_cpu_us = {c: 1000.0 for c in levels}
    return out
