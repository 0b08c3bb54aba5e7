"""bench/compare.py's rows: a server in one configuration, and what its sweep measured."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from batchserve.bench.stats import StepResult

#: How a row's requests are encoded: the raw JPEG, the JPEG in base64 JSON (LitServe),
#: the raw float32 tensor, that tensor in base64 JSON (LitServe), or a v2 binary
#: tensor request as tritonclient sends it (batchserve's /v2/models/{m}/infer).
Body = Literal["image", "b64json", "tensor", "b64tensor", "v2"]
#: Which comparison a row belongs to: the ONNX model of --model (MobileNet v1, or the
#: demo model), or the seed's Keras MobileNet (30 classes) in TensorFlow's formats.
Group = Literal["onnx", "tf"]
ON_RAY = "batchserve on Ray Serve"


@dataclass(frozen=True)
class Config:
    """One server in one configuration: how to start it and what to send it."""

    server: str
    label: str
    argv: Callable[[int], list[str]]
    path: str = "/predict"
    body: Body = "image"
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 120.0
    needs: tuple[str, ...] = ()
    group: Group = "onnx"
    #: Why this row cannot run this workload (no tensor route, no demo model), else None.
    unsupported: str | None = None


@dataclass
class Outcome:
    """A configuration's sweep, or why it has none."""

    config: Config
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None
    startup_s: float | None = None
    #: The machine's 1-minute load average when the sweep began: others' work shows here.
    load_1m: float | None = None
    #: py-spy's leaf functions and their share of samples, with --profile.
    profile: list[tuple[str, float]] | None = None
    #: The server process tree's CPU (user + system) per completed request, by level.
    server_cpu_us: dict[int, float | None] = field(default_factory=dict)
    #: Which round of --repeat it is from (0 without), or "median" once merged.
    round: int | str = 0

    def step(self, concurrency: int) -> StepResult | None:
        return next((s for s in self.steps if s.concurrency == concurrency), None)

    def throughput(self, concurrency: int) -> float | None:
        step = self.step(concurrency)
        return None if step is None else step.throughput

    def p50(self, concurrency: int) -> float | None:
        step = self.step(concurrency)
        return None if step is None else step.latency_ms.p50

    def rss_at(self, concurrency: int) -> int | None:
        step = self.step(concurrency)
        return None if step is None else step.rss_peak_bytes

    @property
    def rss_peak(self) -> int | None:
        peaks = [s.rss_peak_bytes for s in self.steps if s.rss_peak_bytes is not None]
        return max(peaks) if peaks else None

    @property
    def errors(self) -> int:
        return sum(s.error_total for s in self.steps)

    def steps_dict(self) -> list[dict]:
        """The steps as JSON, each with the server's CPU per request of that level."""
        return [
            {**s.as_dict(), "server_cpu_per_request_us": self.server_cpu_us.get(s.concurrency or 0)}
            for s in self.steps
        ]


def best(outcomes: Sequence[Outcome], server: str, level: int) -> Outcome | None:
    """A server's configuration with the highest throughput at `level` clients."""
    mine = [o for o in outcomes if o.config.server == server and o.throughput(level) is not None]
    return max(mine, key=lambda o: o.throughput(level) or 0.0, default=None)


def is_ours(server: str) -> bool:
    return server.startswith("batchserve")


def peers(outcomes: Sequence[Outcome]) -> list[str]:
    """The other servers of the ONNX comparison, in run order."""
    names = dict.fromkeys(o.config.server for o in outcomes if o.config.group == "onnx")
    return [n for n in names if not is_ours(n)]
