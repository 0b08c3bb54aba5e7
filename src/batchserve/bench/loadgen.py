"""The load generator: closed-loop clients and open-loop arrivals, over any client.

A target makes connections (`LoadTarget.connect`) and a connection sends request
`i` of the target's rotation and awaits its answer (`Connection.exchange`): the
HTTP/1.1 client (`http_client`) and the gRPC one (`grpc_client`) run under the same
loops and the same statistics. One asyncio event loop (uvloop when installed) on
one thread drives every connection. Requests are pre-encoded (see `targets`), so a
request costs the generator little CPU: on a small machine the generator shares the
cores with the server, and every microsecond it spends is one the server does not
get. The cost is measured (getrusage) and reported with each step.

Closed loop: N clients, each with its own connection, send back to back. The window
opens after the warm-up once every client has had one answer (so the first convoy of
N simultaneous requests is not measured) and lasts `duration`; responses completing
in it count.

Open loop: requests are scheduled at fixed or Poisson intervals and each one's
latency is measured from its *intended* send time, so a server that stalls cannot
hide the queue that builds up behind it (no coordinated omission). In-flight requests
are capped; a request that finds the cap reached is not sent and counts as ``dropped``.

Everything is bounded: each request has a timeout, each step ends by itself, and the
stragglers of a step are waited for at most one timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from batchserve.bench.stats import (
    CONNECT,
    DROPPED,
    LatencySummary,
    StepResult,
    client_cost,
    error_counts,
)

#: After a failed connect, a closed-loop client waits this long: a dead server must not
#: turn the generator into a busy loop of refused connections.
CONNECT_BACKOFF_S = 0.05
#: How much of an error's detail is kept, to show the first error of each kind.
ERROR_DETAIL_CHARS = 300
#: Idle open-loop connections older than this are closed rather than reused: the server
#: may be closing them (uvicorn's keep-alive timeout is 5 s), and a request sent on a
#: connection the server just closed would count as a spurious error.
IDLE_REUSE_S = 2.0

Arrival = Literal["poisson", "uniform"]


class Connection(Protocol):
    """One client connection, carrying one request at a time."""

    #: False once it cannot carry another request (closed, broken, timed out).
    usable: bool
    #: When its last request ended (perf_counter), for idle reuse.
    last_used: float

    async def exchange(self, index: int, timeout: float) -> tuple[str | None, str]:
        """Send request `index` of the rotation and await the answer: (None, "") for a
        success, else (error kind, detail). Never raises for the server's errors."""
        ...

    def close(self) -> None: ...


class LoadTarget(Protocol):
    """What the loops load: something that opens connections to one endpoint."""

    description: str

    async def connect(self, timeout: float) -> Connection:
        """A new connection; raises OSError or TimeoutError when none can be opened."""
        ...


@dataclass
class StepProgress:
    """Live counters of the running step, read by the progress display's thread."""

    label: str = ""
    started: float = 0.0
    planned_s: float = 0.0
    measuring: bool = False
    completed: int = 0
    errors: int = 0
    in_flight: int = 0

    def reset(self, label: str, planned_s: float) -> None:
        self.label, self.planned_s, self.started = label, planned_s, time.perf_counter()
        self.measuring, self.completed, self.errors, self.in_flight = False, 0, 0, 0


@dataclass
class _Records:
    """Every request of a step: when it was meant to go, when it ended, how."""

    intended: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    kind: list[str | None] = field(default_factory=list)
    send_lag: list[float] = field(default_factory=list)
    first_errors: dict[str, str] = field(default_factory=dict)

    def add(
        self,
        intended: float,
        done: float,
        kind: str | None,
        progress: StepProgress,
        detail: str = "",
        send_lag: float = 0.0,
    ) -> None:
        self.intended.append(intended)
        self.done.append(done)
        self.latency.append(done - intended if kind is None else math.nan)
        self.kind.append(kind)
        self.send_lag.append(send_lag)
        progress.completed += 1
        if kind is not None:
            progress.errors += 1
            if kind not in self.first_errors:
                self.first_errors[kind] = detail[:ERROR_DETAIL_CHARS]


async def _one_request(
    target: LoadTarget, index: int, conn: Connection | None, timeout: float
) -> tuple[str | None, str, Connection | None]:
    """Send request `index`, opening a connection if needed.

    Returns (error kind or None, error detail, the connection if it can be reused).
    """
    if conn is None or not conn.usable:
        try:
            conn = await target.connect(timeout)
        except (OSError, TimeoutError) as exc:
            return CONNECT, f"{type(exc).__name__}: {exc}", None
    kind, detail = await conn.exchange(index, timeout)
    if not conn.usable:
        conn.close()
        return kind, detail, None
    return kind, detail, conn


def _cpu_seconds() -> tuple[float, float]:
    """(this thread's CPU, the whole process's CPU) in seconds.

    The event loop's thread is what each request costs; the process adds the memory
    sampler and the progress display, which cost the same however many requests run.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.thread_time(), usage.ru_utime + usage.ru_stime


def _cpu_since(begin: tuple[float, float] | None) -> tuple[float, float]:
    if begin is None:
        return 0.0, 0.0
    now = _cpu_seconds()
    return now[0] - begin[0], now[1] - begin[1]


async def closed_loop(
    target: LoadTarget,
    *,
    clients: int,
    duration: float,
    warmup: float,
    timeout: float,
    progress: StepProgress | None = None,
) -> StepResult:
    """`clients` connections sending back to back; see the module docstring."""
    progress = progress or StepProgress()
    progress.reset(f"c={clients}", warmup + duration)
    records = _Records()
    stop_at = [math.inf]
    warm: set[int] = set()
    all_warm = asyncio.Event()
    counter = iter(range(1 << 62))

    async def client(slot: int) -> None:
        conn: Connection | None = None
        try:
            while time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                progress.in_flight += 1
                kind, detail, conn = await _one_request(target, next(counter), conn, timeout)
                progress.in_flight -= 1
                records.add(t0, time.perf_counter(), kind, progress, detail)
                if slot not in warm:
                    warm.add(slot)
                    if len(warm) == clients:
                        all_warm.set()
                if kind == CONNECT:
                    await asyncio.sleep(CONNECT_BACKOFF_S)
        finally:
            if conn is not None:
                conn.close()

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    try:
        await asyncio.sleep(warmup)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_warm.wait(), timeout)
        begin = time.perf_counter()
        cpu_begin = _cpu_seconds()
        stop_at[0] = end = begin + duration
        progress.measuring = True
        await asyncio.sleep(duration)
        cpu = _cpu_since(cpu_begin)
        await _drain(tasks, timeout)
    finally:
        for task in tasks:
            task.cancel()
    return _summarize(records, "closed", clients, None, begin, end, warmup, cpu, by_done=True)


def arrival_offsets(
    rate: float, span: float, arrival: Arrival, rng: np.random.Generator
) -> np.ndarray:
    """Intended send times, in seconds from the start, of a run of `span` seconds.

    Poisson arrivals have exponential gaps of mean 1/rate (what independent users
    produce); uniform ones are evenly spaced. The first request goes at time 0.
    """
    expected = int(rate * span)
    if arrival == "uniform":
        return np.arange(expected, dtype=np.float64) / rate
    # Draw with headroom, then cut at the span; a short draw is topped up.
    gaps = rng.exponential(1.0 / rate, size=expected + 10 * int(math.sqrt(expected)) + 16)
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    while times[-1] < span:
        more = rng.exponential(1.0 / rate, size=expected + 16)
        times = np.concatenate([times, times[-1] + np.cumsum(more)])
    return times[times < span]


async def open_loop(
    target: LoadTarget,
    *,
    rate: float,
    duration: float,
    warmup: float,
    timeout: float,
    arrival: Arrival = "poisson",
    seed: int = 0,
    max_outstanding: int = 512,
    progress: StepProgress | None = None,
) -> StepResult:
    """Requests at `rate` per second, latency from the intended send time."""
    progress = progress or StepProgress()
    progress.reset(f"{rate:g}/s", warmup + duration)
    records = _Records()
    offsets = arrival_offsets(rate, warmup + duration, arrival, np.random.default_rng(seed))
    idle: list[Connection] = []
    tasks: set[asyncio.Task[None]] = set()

    async def request(index: int, intended: float) -> None:
        conn = None
        while idle and conn is None:
            candidate = idle.pop()
            if candidate.usable and time.perf_counter() - candidate.last_used < IDLE_REUSE_S:
                conn = candidate
            else:
                candidate.close()
        lag = time.perf_counter() - intended
        kind, detail, conn = await _one_request(target, index, conn, timeout)
        done = time.perf_counter()
        progress.in_flight -= 1
        records.add(intended, done, kind, progress, detail, lag)
        if conn is not None:
            conn.last_used = done
            idle.append(conn)

    start = time.perf_counter() + 0.01
    begin, end = start + warmup, start + warmup + duration
    cpu_begin: tuple[float, float] | None = None
    try:
        for index, offset in enumerate(offsets):
            intended = start + float(offset)
            delay = intended - time.perf_counter()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            if cpu_begin is None and intended >= begin:
                progress.measuring = True
                cpu_begin = _cpu_seconds()
            if progress.in_flight >= max_outstanding:
                records.add(intended, intended, DROPPED, progress, "max outstanding reached")
                continue
            progress.in_flight += 1
            task = asyncio.create_task(request(index, intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if end > time.perf_counter():
            await asyncio.sleep(end - time.perf_counter())
        cpu = _cpu_since(cpu_begin)
        await _drain(list(tasks), timeout)
    finally:
        for task in list(tasks):
            task.cancel()
        for conn in idle:
            conn.close()
    return _summarize(records, "open", None, rate, begin, end, warmup, cpu, by_done=False)


async def _drain(tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """Wait for the step's in-flight requests: each ends within its connect and send timeouts."""
    if tasks:
        await asyncio.wait(tasks, timeout=2 * timeout + 5.0)


def _summarize(
    records: _Records,
    mode: Literal["closed", "open"],
    concurrency: int | None,
    rate: float | None,
    begin: float,
    end: float,
    warmup: float,
    cpu: tuple[float, float],
    *,
    by_done: bool,
) -> StepResult:
    done = np.asarray(records.done)
    kinds = np.asarray(records.kind, dtype=object)
    ok = np.fromiter((k is None for k in records.kind), dtype=bool, count=len(records.kind))
    # Closed loop: what completed in the window. Open loop: what was scheduled in it.
    when = done if by_done else np.asarray(records.intended)
    selected = (when >= begin) & (when <= end)
    completed_ok = int(np.count_nonzero(ok & (done >= begin) & (done <= end)))
    duration = end - begin
    measured = int(np.count_nonzero(selected))
    per_request, percent = client_cost(cpu, measured, duration)
    send_lag = np.asarray(records.send_lag)[selected & ok]
    lag_p99 = float(np.percentile(send_lag, 99) * 1000.0) if send_lag.size else None
    return StepResult(
        mode=mode,
        concurrency=concurrency,
        rate=rate,
        duration_s=duration,
        warmup_s=warmup,
        requests=measured,
        ok=int(np.count_nonzero(selected & ok)),
        errors=error_counts(kinds[selected]),
        throughput=completed_ok / duration,
        latency_ms=LatencySummary.of(np.asarray(records.latency)[selected & ok]),
        client_cpu_s=cpu[1],
        client_cpu_per_request_us=per_request,
        client_cpu_percent=percent,
        first_errors=dict(records.first_errors),
        send_lag_p99_ms=lag_p99 if mode == "open" else None,
    )


@contextlib.contextmanager
def event_loop() -> Iterator[Callable[..., StepResult]]:
    """A runner for the steps of one sweep, on uvloop when it is installed."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # uvloop comes with uvicorn[standard]; plain asyncio works too
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner.run


async def probe(target: LoadTarget, timeout: float) -> tuple[str | None, str]:
    """One request before a run: (error kind or None, detail), to fail early and clearly."""
    kind, detail, conn = await _one_request(target, 0, None, timeout)
    if conn is not None:
        conn.close()
    return kind, detail
