"""One step's numbers: latency percentiles, errors by kind, throughput, client cost.

Latency percentiles are over successful responses only: a fast 503 is not a fast
answer, and counting it would make an overloaded server look quick. Errors are
counted by kind so that a reader can tell a full queue (``status_503``) from a
stalled server (``timeout``) or a dead one (``connect``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

PERCENTILES = (50, 90, 95, 99)

#: Error kinds besides ``status_NNN`` (any non-2xx HTTP status) and ``grpc_<code>`` (a
#: gRPC status the server answered, e.g. ``grpc_unavailable``).
TIMEOUT = "timeout"  # no full response within --timeout
CONNECT = "connect"  # the connection could not be opened
DISCONNECT = "disconnect"  # the server closed or reset the connection mid-request
PROTOCOL = "protocol"  # the response was not valid HTTP/1.1
DROPPED = "dropped"  # open loop: not sent, --max-outstanding requests already in flight


def status_kind(status: int) -> str | None:
    """None for a success (2xx), else the error kind ``status_NNN``."""
    return None if 200 <= status < 300 else f"status_{status}"


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds; None where there was no successful response to measure."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None
    mean: float | None

    @classmethod
    def of(cls, seconds: Iterable[float] | np.ndarray) -> LatencySummary:
        values = np.asarray(list(seconds) if not isinstance(seconds, np.ndarray) else seconds)
        values = values[np.isfinite(values)] * 1000.0
        if values.size == 0:
            return cls(None, None, None, None, None, None)
        p50, p90, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
        return cls(p50, p90, p95, p99, float(values.max()), float(values.mean()))


def error_counts(kinds: Iterable[str | None]) -> dict[str, int]:
    """How many of each error kind, most frequent first; successes (None) left out."""
    return dict(Counter(k for k in kinds if k is not None).most_common())


@dataclass
class StepResult:
    """One step of a sweep: a closed loop at one concurrency, or an open loop at one rate.

    ``requests`` counts what the step measured: in a closed loop, the responses (or
    failures) that completed inside the measuring window; in an open loop, the
    requests scheduled inside it, dropped ones included, each waited for up to the
    timeout. ``throughput`` is successful responses completed inside the window per
    second, in both modes.
    """

    mode: Literal["closed", "open"]
    concurrency: int | None
    rate: float | None
    duration_s: float
    warmup_s: float
    requests: int
    ok: int
    errors: dict[str, int]
    throughput: float
    latency_ms: LatencySummary
    #: The generator process's CPU time over the window (loop, memory sampler, display).
    client_cpu_s: float
    #: The generator loop's CPU time per measured request: when it nears the server's
    #: time per request on shared cores, the generator, not the server, is the limit.
    client_cpu_per_request_us: float | None
    #: The generator process's CPU over the window, in percent of one core.
    client_cpu_percent: float
    first_errors: dict[str, str] = field(default_factory=dict)
    #: Open loop: how late the generator sent (p99), i.e. whether it kept to its schedule.
    send_lag_p99_ms: float | None = None
    rss_bytes: int | None = None
    rss_peak_bytes: int | None = None

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    @property
    def label(self) -> str:
        if self.mode == "closed":
            return f"c={self.concurrency}"
        return f"{self.rate:g}/s"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["label"] = self.label
        out["error_total"] = self.error_total
        return out


def client_cost(
    cpu_s: tuple[float, float], measured: int, duration_s: float
) -> tuple[float | None, float]:
    """(microseconds of the generator loop's CPU per request, the process's % of one core).

    `cpu_s` is (the event loop thread's CPU, the whole process's CPU) over the window.
    """
    loop_s, process_s = cpu_s
    per_request = loop_s / measured * 1e6 if measured else None
    return per_request, 100.0 * process_s / duration_s
