"""A sweep's results for people and for programs: a terminal table, JSON, CSV and a PNG chart."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from batchserve.bench.stats import StepResult

CSV_FIELDS = (
    "label",
    "mode",
    "concurrency",
    "rate",
    "duration_s",
    "requests",
    "ok",
    "error_total",
    "errors",
    "throughput",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "mean_ms",
    "rss_mb",
    "rss_peak_mb",
    "client_cpu_us_per_request",
    "client_cpu_percent",
    "send_lag_p99_ms",
)
#: Past this share of one core the generator may be what limits the measured throughput.
CLIENT_CPU_WARN_PERCENT = 50.0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.0f}"


def results_table(steps: Sequence[StepResult], title: str | None = None) -> Table:
    """One row a step: what a reader compares across concurrency levels or rates."""
    table = Table(title=title, show_lines=False)
    for name in ("step", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p95 ms"):
        table.add_column(name, justify="right")
    for name in ("p99 ms", "max ms", "RSS MB", "client µs/req", "client CPU"):
        table.add_column(name, justify="right")
    for s in steps:
        errors = ", ".join(f"{k} {v}" for k, v in s.errors.items()) or "0"
        lat = s.latency_ms
        cpu = "-" if s.client_cpu_per_request_us is None else f"{s.client_cpu_per_request_us:.0f}"
        table.add_row(
            s.label,
            str(s.requests),
            errors,
            f"{s.throughput:.1f}",
            _ms(lat.p50),
            _ms(lat.p90),
            _ms(lat.p95),
            _ms(lat.p99),
            _ms(lat.max),
            _mb(s.rss_peak_bytes),
            cpu,
            f"{s.client_cpu_percent:.0f}%",
        )
    return table


def client_note(steps: Sequence[StepResult]) -> str:
    """What the generator itself cost, and a warning when it may be the bottleneck."""
    costs = [s.client_cpu_per_request_us for s in steps if s.client_cpu_per_request_us]
    if not costs:
        return "client CPU: no request measured"
    busiest = max(steps, key=lambda s: s.client_cpu_percent)
    note = (
        f"client CPU per request: {min(costs):.0f}-{max(costs):.0f} µs; busiest step "
        f"{busiest.label} used {busiest.client_cpu_percent:.0f}% of one core"
    )
    if busiest.client_cpu_percent > CLIENT_CPU_WARN_PERCENT:
        note += (
            " - the generator competes with the server for CPU on a shared machine; "
            "run it on other cores (taskset) or another machine to be sure the server is the limit"
        )
    return note


def write_json(path: Path, steps: Sequence[StepResult], meta: dict[str, Any]) -> None:
    doc = {**meta, "steps": [s.as_dict() for s in steps]}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def csv_row(step: StepResult) -> dict[str, Any]:
    lat = step.latency_ms
    return {
        "label": step.label,
        "mode": step.mode,
        "concurrency": step.concurrency,
        "rate": step.rate,
        "duration_s": round(step.duration_s, 3),
        "requests": step.requests,
        "ok": step.ok,
        "error_total": step.error_total,
        "errors": ";".join(f"{k}={v}" for k, v in step.errors.items()),
        "throughput": round(step.throughput, 3),
        "p50_ms": lat.p50,
        "p90_ms": lat.p90,
        "p95_ms": lat.p95,
        "p99_ms": lat.p99,
        "max_ms": lat.max,
        "mean_ms": lat.mean,
        "rss_mb": None if step.rss_bytes is None else round(step.rss_bytes / 1e6, 1),
        "rss_peak_mb": None if step.rss_peak_bytes is None else round(step.rss_peak_bytes / 1e6, 1),
        "client_cpu_us_per_request": step.client_cpu_per_request_us,
        "client_cpu_percent": round(step.client_cpu_percent, 2),
        "send_lag_p99_ms": step.send_lag_p99_ms,
    }


def write_csv(path: Path, steps: Sequence[StepResult]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for step in steps:
            writer.writerow(csv_row(step))


def write_chart(path: Path, steps: Sequence[StepResult], title: str) -> None:
    """Throughput (and memory, on a second axis) over latency percentiles, per step."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the chart is a file
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    closed = all(s.mode == "closed" for s in steps)
    xs = [float(s.concurrency if closed else s.rate or 0.0) for s in steps]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    top.plot(xs, [s.throughput for s in steps], "o-", color="tab:blue", label="throughput")
    top.set_ylabel("throughput (req/s)", color="tab:blue")
    top.set_ylim(bottom=0)
    top.grid(True, alpha=0.3)
    rss = [s.rss_peak_bytes for s in steps]
    handles = top.get_lines()
    if any(r is not None for r in rss):
        mem = top.twinx()
        handles += mem.plot(
            xs,
            [float("nan") if r is None else r / 1e6 for r in rss],
            "s--",
            color="tab:gray",
            label="server RSS (peak)",
        )
        mem.set_ylabel("server RSS (MB)", color="tab:gray")
        mem.set_ylim(bottom=0)
    top.legend(handles=handles, loc="lower right", fontsize="small")
    for name, style in (("p50", "o-"), ("p90", "^-"), ("p95", "v-"), ("p99", "s-"), ("max", "x:")):
        values = [getattr(s.latency_ms, name) for s in steps]
        bottom.plot(xs, [float("nan") if v is None else v for v in values], style, label=name)
    bottom.set_ylabel("latency (ms)")
    if any(s.latency_ms.p50 for s in steps):
        bottom.set_yscale("log")
        bottom.yaxis.set_major_formatter(ScalarFormatter())
    bottom.grid(True, which="both", alpha=0.3)
    bottom.legend(loc="upper left", fontsize="small")
    bottom.set_xlabel("concurrent clients" if closed else "offered rate (req/s)")
    if closed and len(xs) > 1 and min(xs) > 0:
        bottom.set_xscale("log", base=2)
        bottom.set_xticks(xs, [f"{x:g}" for x in xs])
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(
    out: Path, steps: Sequence[StepResult], meta: dict[str, Any], title: str
) -> list[Path]:
    """bench.json, bench.csv and bench.png in `out` (created); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench.json", out / "bench.csv", out / "bench.png"]
    write_json(paths[0], steps, meta)
    write_csv(paths[1], steps)
    write_chart(paths[2], steps, title)
    return paths
