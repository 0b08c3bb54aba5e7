"""Steps driven by wrk (the Debian package) instead of `batchserve bench`'s generator.

bench/compare.py's `--client wrk`: each closed-loop step is a wrk run of N connections
posting one fixed body (bench/peers/wrk_post.lua), after a warm-up run of its own
that is not measured, and wrk's report (`--latency`, plus the script's ``wrk-summary``
line) becomes the same `StepResult` the built-in generator returns, so the table,
chart, ratios and targets work unchanged. wrk is C on one thread with epoll: it costs
the cores it shares with the server less per request than the Python generator.

What wrk cannot say, and how it is read here:
- non-2xx responses are counted but not by status: they are the ``non_2xx`` error kind;
  socket errors keep wrk's kinds (``connect``, ``read``, ``write``, ``timeout``);
- its latency covers every complete response, non-2xx ones included (the built-in
  generator's covers successes only); with no success at all there is no latency;
- its durations are whole seconds (``-d``), so a 2.5 s step runs 3 s (the actual
  window is what its report says, and throughput is divided by that).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchserve.bench.memory import MemoryProbe, MemorySampler
from batchserve.bench.stats import CONNECT, TIMEOUT, LatencySummary, StepResult
from batchserve.bench.sweep import LoadSettings, StepPlan

SCRIPT = Path(__file__).resolve().parent / "peers" / "wrk_post.lua"
INSTALL_HINT = (
    "wrk is not installed: `make bench-tools` installs it (as root, with apt-get), "
    "or `sudo apt-get install wrk` (Debian/Ubuntu package wrk)"
)
#: The error kinds a wrk step reports, besides CONNECT and TIMEOUT.
NON_2XX = "non_2xx"
READ = "read"
WRITE = "write"

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


def find_wrk() -> str | None:
    return shutil.which("wrk")


@dataclass(frozen=True)
class WrkReport:
    """One wrk run, as its output says."""

    #: Complete responses, whatever their status.
    requests: int
    duration_s: float
    non_2xx: int
    #: wrk's socket errors by kind: connect, read, write, timeout.
    socket_errors: dict[str, int]
    #: Over every complete response (see the module docstring); None with none.
    latency_ms: LatencySummary
    #: wrk's own Requests/sec (non-2xx included), for reference.
    requests_per_s: float | None = None
    #: Why wrk produced no report (it could not connect), else "".
    failure: str = ""

    @property
    def ok(self) -> int:
        return max(0, self.requests - self.non_2xx)

    @property
    def errors(self) -> dict[str, int]:
        kinds = {
            NON_2XX: self.non_2xx,
            CONNECT: self.socket_errors.get("connect", 0),
            READ: self.socket_errors.get("read", 0),
            WRITE: self.socket_errors.get("write", 0),
            TIMEOUT: self.socket_errors.get("timeout", 0),
        }
        return {k: v for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]) if v}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def _summary_line(text: str) -> dict[str, float] | None:
    """The ``wrk-summary key=value ...`` line that wrk_post.lua's done() prints."""
    match = re.search(r"^wrk-summary (.+)$", text, re.M)
    if not match:
        return None
    pairs = (item.split("=", 1) for item in match.group(1).split())
    return {k: float(v) for k, v in pairs}


def parse_wrk_output(text: str) -> WrkReport:
    """wrk's `--latency` report (wrk 4.x), with the script's summary line when present.

    Raises ValueError on text that is neither a report nor a connection failure.
    """
    unable = re.search(r"^unable to connect to .*$", text, re.M)
    count = re.search(r"^\s*(\d+) requests in " + _TIME + ",", text, re.M)
    if count is None:
        if unable:
            return WrkReport(
                0, 0.0, 0, {"connect": 1}, LatencySummary.of([]), failure=unable.group(0)
            )
        raise ValueError(f"not a wrk report: {text[:200]!r}")
    requests = int(count.group(1))
    duration_s = _ms(count.group(2), count.group(3)) / 1000.0
    non_2xx_match = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    non_2xx = int(non_2xx_match.group(1)) if non_2xx_match else 0
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    socket_errors = dict(
        zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True)
        if sockets
        else {}
    )
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    summary = _summary_line(text)
    if summary is not None:
        # The script's numbers are exact (µs, integers): prefer them to the rounded text.
        duration_s = summary["duration_us"] / 1e6
        non_2xx = int(summary["status"])
        socket_errors = {k: int(summary[k]) for k in ("connect", "read", "write", "timeout")}
    ok = requests - non_2xx
    latency = _latency(text, summary) if ok > 0 else LatencySummary.of([])
    return WrkReport(
        requests=requests,
        duration_s=duration_s,
        non_2xx=non_2xx,
        socket_errors={k: v for k, v in socket_errors.items() if v},
        latency_ms=latency,
        requests_per_s=float(rate.group(1)) if rate else None,
    )


def _latency(text: str, summary: dict[str, float] | None) -> LatencySummary:
    if summary is not None:
        ms = {k: summary[f"{k}_us"] / 1000.0 for k in ("p50", "p90", "p95", "p99", "max", "mean")}
        return LatencySummary(**ms)
    percent = {
        int(p): _ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+" + _TIME + r"\s*$", text, re.M)
    }
    thread = re.search(r"^\s+Latency\s+" + _TIME + r"\s+" + _TIME + r"\s+" + _TIME, text, re.M)
    mean = _ms(thread.group(1), thread.group(2)) if thread else None
    peak = _ms(thread.group(5), thread.group(6)) if thread else None
    return LatencySummary(percent.get(50), percent.get(90), None, percent.get(99), peak, mean)


def step_result(
    report: WrkReport, concurrency: int, warmup_s: float, client_cpu_s: float
) -> StepResult:
    """The step as `batchserve bench` reports one (closed loop), from wrk's report."""
    errors = report.errors
    duration = report.duration_s
    measured = report.requests + sum(report.socket_errors.values())
    return StepResult(
        mode="closed",
        concurrency=concurrency,
        rate=None,
        duration_s=duration,
        warmup_s=warmup_s,
        requests=measured,
        ok=report.ok,
        errors=errors,
        throughput=report.ok / duration if duration > 0 else 0.0,
        latency_ms=report.latency_ms,
        client_cpu_s=client_cpu_s,
        client_cpu_per_request_us=client_cpu_s / measured * 1e6 if measured else None,
        client_cpu_percent=100.0 * client_cpu_s / duration if duration > 0 else 0.0,
        first_errors={CONNECT: report.failure} if report.failure else {},
    )


@dataclass(frozen=True)
class Post:
    """What every wrk connection POSTs, and where."""

    url: str
    body: bytes
    content_type: str
    headers: Sequence[tuple[str, str]] = field(default_factory=tuple)


def _whole_seconds(seconds: float) -> int:
    """wrk's -d takes whole seconds: at least 1, rounded up."""
    return max(1, math.ceil(seconds - 1e-9))


def run_wrk(
    request: Post,
    connections: int,
    seconds: float,
    timeout_s: float,
    *,
    threads: int = 1,
    wrk: str | None = None,
) -> tuple[str, float]:
    """One wrk run: (its output, its own CPU seconds, user + system)."""
    exe = wrk or find_wrk()
    if exe is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="wrk-") as scratch:
        body = Path(scratch) / "body"
        body.write_bytes(request.body)
        out = Path(scratch) / "out.txt"
        env = {
            **os.environ,
            "WRK_BODY": str(body),
            "WRK_CONTENT_TYPE": request.content_type,
            "WRK_HEADERS": "\n".join(f"{k}: {v}" for k, v in request.headers),
        }
        command = [
            exe,
            f"-t{max(1, min(threads, connections))}",
            f"-c{connections}",
            f"-d{_whole_seconds(seconds)}s",
            f"--timeout={max(1, math.ceil(timeout_s))}s",
            "--latency",
            "-s",
            str(SCRIPT),
            request.url,
        ]
        with out.open("w") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        # wait4: this child's own rusage, whatever else this process has running.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        return out.read_text(errors="replace"), usage.ru_utime + usage.ru_stime


def wrk_step(
    request: Post,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    timeout_s: float,
    *,
    threads: int = 1,
    on_measure: Callable[[bool], None] | None = None,
) -> tuple[StepResult, str]:
    """A warm-up run (not measured; skipped when warmup_s is 0), then the measured run.

    `on_measure(True)` is called just before the measured run and `on_measure(False)`
    just after it: the window in which to read the server's CPU.
    """
    warmed = 0.0
    if warmup_s > 0:
        warmed = float(_whole_seconds(warmup_s))
        run_wrk(request, concurrency, warmup_s, timeout_s, threads=threads)
    if on_measure:
        on_measure(True)
    try:
        text, cpu = run_wrk(request, concurrency, duration_s, timeout_s, threads=threads)
    finally:
        if on_measure:
            on_measure(False)
    return step_result(parse_wrk_output(text), concurrency, warmed, cpu), text


def wrk_sweep(
    request: Post,
    levels: Sequence[int],
    settings: LoadSettings,
    *,
    memory: MemoryProbe | None = None,
    threads: int = 1,
    on_step_start: Callable[[StepPlan], None] | None = None,
    on_step_end: Callable[[StepResult], None] | None = None,
    on_measure: Callable[[bool], None] | None = None,
    log: Path | None = None,
) -> list[StepResult]:
    """`run_sweep`'s closed-loop steps with wrk, the server's memory sampled the same way;
    each run's report is appended to `log` when given."""
    sampler = MemorySampler(memory)
    results = []
    for level in levels:
        plan = StepPlan.closed(level)
        if on_step_start:
            on_step_start(plan)
        sampler.start()
        try:
            result, text = wrk_step(
                request,
                level,
                settings.duration,
                settings.warmup,
                settings.timeout,
                threads=threads,
                on_measure=on_measure,
            )
        finally:
            rss = sampler.stop()
        result.rss_bytes, result.rss_peak_bytes = rss
        if log is not None:
            with log.open("a") as f:
                f.write(f"--- wrk c={level} {request.url}\n{text}\n")
        results.append(result)
        if on_step_end:
            on_step_end(result)
    return results
