"""batchserve against what a user would pick instead, on this machine, in one run.

Each server is started on a free loopback port with the same MobileNet v1 1.0/224
model (``models-bench``, built when missing) and the same 640x480 JPEG, swept with
`batchserve bench`'s own generator at the same concurrency levels, and stopped:

- the in-process ceiling: decode + inference overlapped on two threads, no HTTP;
- batchserve, default configuration;
- batchserve on Ray Serve (`serve --ray`): 2 replicas of 1 CPU, and 1 replica of 2 CPUs
  to set against batchserve alone (what Ray's proxy costs a request);
- the seed's design: Flask + Gunicorn (1 worker, 2 threads), eager PyTorch;
- Flask + Gunicorn + ONNX Runtime;
- LitServe and Ray Serve, batching off and on, one or two workers/replicas,
  ORT threads 1 or 2, each configured as its documentation recommends for CPU;
- a hand-written FastAPI server with a pool of two one-thread sessions;
- the TensorFlow rows, on the seed's Keras MobileNet v1 with a 30-class head
  (``models-tf``, built by tools/build_keras_mobilenet.py when missing): batchserve
  serving its SavedModel and its ``.tflite`` file, against Flask + Gunicorn +
  TensorFlow written as the original article did (1 worker, 2 threads,
  ``model.predict`` per request). They need the tf and tflite extras.

Peers need the optional extra (``pip install -e '.[peers]'``); one that is not
installed is skipped with a note. Writes compare.json, compare.csv, compare.md and
compare.png to --out, and prints the table, the ratios and the targets.

    .venv/bin/python bench/compare.py --duration 10s --out bench-results/compare
    .venv/bin/python bench/compare.py --duration 5s --only tf   # the TensorFlow rows only

--quick runs one documented configuration per peer instead of all of them; --wrk
also measures batchserve at c=8 with wrk (when installed) next to the same step
from `batchserve bench`, to compare the generators' own CPU cost; --profile records
batchserve with py-spy during the c=64 step.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from batchserve.bench.memory import ProcessTreeMemory
from batchserve.bench.stats import StepResult
from batchserve.bench.sweep import LoadSettings, StepPlan, auto_warmup, run_sweep
from batchserve.bench.targets import build_target
from batchserve.units import parse_concurrency, parse_duration

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "peers"
sys.path.insert(0, str(PEERS))

sys.path.insert(0, str(ROOT / "bench"))

from ceiling import ceiling  # noqa: E402  (bench/peers is not a package)
from engine import sample_jpeg  # noqa: E402  (the shared 640x480 JPEG, or one made like it)
from launch import ServerProcess, free_port  # noqa: E402

MODEL_DIR = ROOT / "models-bench" / "mobilenet_v1"
PREDICT = "/v1/models/mobilenet_v1/predict"
TF_MODELS = ROOT / "models-tf"
LEVELS = "1,8,64,100"
ON_RAY = "batchserve on Ray Serve"
Body = Literal["image", "b64json"]
#: Which comparison a row belongs to: the ONNX MobileNet 1000-class benchmark model, or
#: the seed's Keras MobileNet (30 classes) in TensorFlow's formats.
Group = Literal["onnx", "tf"]


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

    def step(self, concurrency: int) -> StepResult | None:
        return next((s for s in self.steps if s.concurrency == concurrency), None)

    def throughput(self, concurrency: int) -> float | None:
        step = self.step(concurrency)
        return None if step is None else step.throughput

    @property
    def rss_peak(self) -> int | None:
        peaks = [s.rss_peak_bytes for s in self.steps if s.rss_peak_bytes is not None]
        return max(peaks) if peaks else None

    @property
    def errors(self) -> int:
        return sum(s.error_total for s in self.steps)


def single_model_repository(scratch: Path, name: str) -> Path:
    """A repository holding only models-tf's `name`, so that the server loads that one."""
    repository = scratch / f"repository-{name}"
    repository.mkdir(exist_ok=True)
    link = repository / name
    if not link.exists():
        link.symlink_to(TF_MODELS / name, target_is_directory=True)
    return repository


def configurations(quick: bool, scratch: Path) -> list[Config]:
    """Every server and configuration of the comparison (--quick: the documented default)."""
    py = sys.executable
    gunicorn = [py, "-m", "gunicorn", "--chdir", str(PEERS), "--log-level", "warning"]

    def batchserve(p: int, repository: Path = MODEL_DIR.parent) -> list[str]:
        return [py, "-m", "batchserve", "serve", "--repository", str(repository),
                *f"--host 127.0.0.1 --port {p}".split()]  # fmt: skip

    def flask(workers: int, threads: int, app: str = "flask_app") -> Callable[[int], list[str]]:
        return lambda p: [*gunicorn, *f"-w {workers} --threads {threads} -b 127.0.0.1:{p}".split(),
                          f"{app}:app"]  # fmt: skip

    def batchserve_tf(name: str) -> Callable[[int], list[str]]:
        return lambda p: batchserve(p, single_model_repository(scratch, name))

    def script(name: str, options: str) -> Callable[[int], list[str]]:
        return lambda p: [py, str(PEERS / name), "--port", str(p), *options.split()]

    def batchserve_on_ray(replicas: int, cpus: int) -> Callable[[int], list[str]]:
        return lambda p: [*batchserve(p), "--ray", *f"--ray-replicas {replicas}".split(),
                          *f"--ray-num-cpus {cpus}".split()]  # fmt: skip

    configs = [
        Config("batchserve", "default config", batchserve, path=PREDICT),
        Config(
            ON_RAY,
            "2 replicas x 1 CPU",
            batchserve_on_ray(2, 1),
            path=PREDICT,
            ready_timeout=300.0,
            needs=("ray",),
        ),
        Config(
            ON_RAY,
            "1 replica x 2 CPUs (what the proxy costs)",
            batchserve_on_ray(1, 2),
            path=PREDICT,
            ready_timeout=300.0,
            needs=("ray",),
        ),
        Config(
            "seed (Flask+Gunicorn+torch)",
            "1 worker x 2 threads, eager torch",
            flask(1, 2),
            env={"PEER_BACKEND": "torch"},
            needs=("flask", "gunicorn", "torch"),
        ),
    ]
    for workers, threads, ort in [(1, 2, 1)] if quick else [(1, 2, 1), (1, 2, 2), (2, 1, 1)]:
        configs.append(
            Config(
                "Flask+Gunicorn+ORT",
                f"{workers} worker x {threads} threads, ORT {ort}",
                flask(workers, threads),
                env={"PEER_BACKEND": "onnx", "PEER_ORT_THREADS": str(ort)},
                needs=("flask", "gunicorn"),
            )
        )
    grid = [(w, b, t) for w in (1, 2) for b in (1, 8) for t in (1, 2)]
    if quick:
        grid = [(2, 1, 1), (2, 8, 1)]
    for n, batch, threads in grid:
        batching = f"batch {batch}" if batch > 1 else "no batching"
        options = f"--batch {batch} --threads {threads}"
        configs.append(
            Config(
                "LitServe",
                f"{n} worker(s), {batching}, ORT {threads}",
                script("litserve_app.py", f"--workers {n} {options}"),
                body="b64json",
                needs=("litserve",),
            )
        )
        configs.append(
            Config(
                "Ray Serve",
                f"{n} replica(s), {batching}, ORT {threads}",
                script("ray_app.py", f"--replicas {n} {options}"),
                ready_timeout=300.0,
                needs=("ray",),
            )
        )
    configs.append(
        Config(
            "FastAPI pool (hand-written)",
            "2 one-thread sessions",
            script("fastapi_pool.py", ""),
        )
    )
    configs += [
        Config(
            "batchserve TF SavedModel",
            "default config",
            batchserve_tf("mobilenet_savedmodel"),
            path="/v1/models/mobilenet_savedmodel/predict",
            ready_timeout=240.0,
            needs=("tensorflow",),
            group="tf",
        ),
        Config(
            "batchserve TFLite",
            "default config, LiteRT (no TensorFlow in the process)",
            batchserve_tf("mobilenet_tflite"),
            path="/v1/models/mobilenet_tflite/predict",
            ready_timeout=240.0,
            needs=("ai_edge_litert",),
            group="tf",
        ),
        Config(
            "Flask+Gunicorn+TF (the article's)",
            "1 worker x 2 threads, model.predict per request",
            flask(1, 2, "flask_tf_app"),
            ready_timeout=240.0,
            needs=("flask", "gunicorn", "tensorflow"),
            group="tf",
        ),
    ]
    # Group each server's configurations together in the run and the table.
    order = list(dict.fromkeys(c.server for c in configs))
    return sorted(configs, key=lambda c: order.index(c.server))


def ensure_model(console: Console) -> None:
    if (MODEL_DIR / "1" / "model.onnx").is_file():
        return
    console.print("building the benchmark model (tools/build_benchmark_model.py)")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "build_benchmark_model.py"),
            "--out",
            str(MODEL_DIR.parent),
        ],
        check=True,
    )


def ensure_tf_models(console: Console) -> None:
    if (TF_MODELS / "mobilenet_tflite" / "1" / "model.tflite").is_file():
        return
    console.print("building the TensorFlow models (tools/build_keras_mobilenet.py)")
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_keras_mobilenet.py"), "--out", str(TF_MODELS)],
        check=True,
    )


def missing(config: Config) -> list[str]:
    return [m for m in config.needs if importlib.util.find_spec(m) is None]


class PySpy:
    """py-spy recording one process for a while, in the background (raw collapsed stacks)."""

    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        self.out = out
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.process = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "100",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def summary(self, top: int = 20) -> list[tuple[str, float]]:
        """(leaf function, share of samples): where the server's threads spent their time."""
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return []
        if not self.out.exists():
            return [("py-spy failed: " + err.strip()[-200:], 1.0)]
        leaves: Counter[str] = Counter()
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                leaves[stack.split(";")[-1]] += int(count)
        total = sum(leaves.values()) or 1
        return [(name, n / total) for name, n in leaves.most_common(top)]


def run_config(
    config: Config,
    jpeg: Path,
    levels: Sequence[int],
    settings: LoadSettings,
    scratch: Path,
    console: Console,
    profile: Path | None = None,
    extra: Callable[[ServerProcess, str], None] | None = None,
) -> Outcome:
    outcome = Outcome(config)
    port = free_port()
    url = f"http://127.0.0.1:{port}{config.path}"
    if config.body == "b64json":
        template = scratch / "b64.json"
        template.write_text('{"image_b64": "{{image_b64}}"}')
        target = build_target(url, images=jpeg, template=template)
        probe_body: dict[str, Any] = {
            "json": {"image_b64": base64.b64encode(jpeg.read_bytes()).decode()}
        }
    else:
        target = build_target(url, images=jpeg)
        probe_body = {"content": jpeg.read_bytes(), "headers": {"content-type": "image/jpeg"}}
    log = scratch / f"{re.sub(r'[^a-z0-9]+', '-', (config.server + config.label).lower())}.log"
    started = time.monotonic()
    env = {"PYTHONPATH": os.pathsep.join([str(PEERS), os.environ.get("PYTHONPATH", "")])}
    server = ServerProcess(config.argv(port), log, env={**env, **config.env}, cwd=ROOT)
    try:

        def ready() -> bool:
            return httpx.post(url, timeout=30, **probe_body).status_code == 200

        server.wait_ready(ready, config.ready_timeout)
        outcome.startup_s = time.monotonic() - started
        outcome.load_1m = os.getloadavg()[0]
        spy: list[PySpy] = []

        def on_start(plan: StepPlan) -> None:
            server.tree()  # Ray and LitServe start processes late: remember them for the stop
            if profile is not None and plan.concurrency == profile_level(levels):
                spy.append(PySpy(server.pid, settings.warmup + settings.duration, profile))

        def on_end(step: StepResult) -> None:
            lat = step.latency_ms
            console.print(
                f"    {step.label:>6}: {step.throughput:7.1f} req/s  p50 "
                f"{lat.p50 or float('nan'):7.1f} ms  p99 {lat.p99 or float('nan'):7.1f} ms  "
                f"errors {step.error_total}  RSS "
                f"{(step.rss_peak_bytes or 0) / 1e6:.0f} MB  client "
                f"{step.client_cpu_per_request_us or 0:.0f} µs/req",
                highlight=False,
            )

        outcome.steps = run_sweep(
            target,
            [StepPlan.closed(c) for c in levels],
            settings,
            memory=ProcessTreeMemory(server.pid),
            on_step_start=on_start,
            on_step_end=on_end,
        )
        if spy:
            outcome.profile = spy[0].summary()
        if extra is not None:
            extra(server, url)
    except RuntimeError as exc:
        outcome.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        console.print(f"    [red]failed:[/] {exc}")
    finally:
        server.stop()
    return outcome


def profile_level(levels: Sequence[int]) -> int:
    """The step that --profile records: c=64, or the middle level."""
    return 64 if 64 in levels else levels[len(levels) // 2]


def wrk_step(url: str, jpeg: Path, seconds: float, console: Console) -> dict[str, Any] | None:
    """wrk at c=8 on one thread: requests/s, latency percentiles and its own CPU per request."""
    wrk = shutil.which("wrk")
    if wrk is None:
        console.print("    wrk not installed (apt-get install wrk): skipped")
        return None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run(
        [
            wrk,
            "-t1",
            "-c8",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            str(PEERS / "wrk_post.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "WRK_BODY": str(jpeg)},
        timeout=seconds + 60,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    text = run.stdout

    def number(pattern: str) -> float | None:
        match = re.search(pattern, text)
        return float(match.group(1)) if match else None

    def ms(label: str) -> float | None:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not match:
            return None
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return float(match.group(1)) * scale

    requests = number(r"(\d+) requests in")
    result = {
        "throughput": number(r"Requests/sec:\s+([\d.]+)"),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "requests": requests,
        "non_2xx": number(r"Non-2xx or 3xx responses: (\d+)") or 0,
        "client_cpu_s": cpu,
        "client_cpu_per_request_us": cpu / requests * 1e6 if requests else None,
        "output": text,
    }
    console.print(
        f"    wrk c=8: {result['throughput']} req/s  p50 {result['p50_ms']} ms  "
        f"p99 {result['p99_ms']} ms  client {result['client_cpu_per_request_us'] or 0:.0f} µs/req",
        highlight=False,
    )
    return result


# -- the report ----------------------------------------------------------------------------


def best(outcomes: Sequence[Outcome], server: str, level: int) -> Outcome | None:
    """A server's configuration with the highest throughput at `level` clients."""
    mine = [o for o in outcomes if o.config.server == server and o.throughput(level) is not None]
    return max(mine, key=lambda o: o.throughput(level) or 0.0, default=None)


def ray_lines(
    outcomes: Sequence[Outcome],
    ours: Outcome,
    low: int,
    mid: int,
    check: Callable[[str, float | None, float, bool], None],
) -> list[str]:
    """batchserve on Ray against plain Ray Serve, and what Ray's proxy costs a request."""
    on_ray = {o.config.label.split(" (")[0]: o for o in outcomes if o.config.server == ON_RAY}
    lines = []
    two, plain = on_ray.get("2 replicas x 1 CPU"), best(outcomes, "Ray Serve", mid)
    if two and two.throughput(mid) and plain and plain.throughput(mid):
        ratio = two.throughput(mid) / plain.throughput(mid)
        lines.append(
            f"{ON_RAY}, 2 replicas, c={mid}: {two.throughput(mid):.1f}/s, {ratio:.2f}x plain "
            f"Ray Serve's best ({plain.config.label}, {plain.throughput(mid):.1f}/s)"
        )
        check(f"c={mid} on Ray (2 replicas) >= 1.5x Ray Serve best", ratio, 1.5, True)
    one = on_ray.get("1 replica x 2 CPUs")
    direct_low, proxied_low = ours.step(low), one.step(low) if one else None
    if direct_low and proxied_low and direct_low.latency_ms.p50 and proxied_low.latency_ms.p50:
        extra = proxied_low.latency_ms.p50 - direct_low.latency_ms.p50
        thr = (one.throughput(mid) or 0.0) / (ours.throughput(mid) or float("nan"))
        lines.append(
            f"Ray's proxy, 1 replica of 2 CPUs against batchserve alone: c={low} p50 "
            f"{proxied_low.latency_ms.p50:.1f} vs {direct_low.latency_ms.p50:.1f} ms "
            f"(+{extra:.1f} ms a request); c={mid} throughput {thr:.2f}x"
        )
    return lines


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_rows(outcomes: Sequence[Outcome], levels: Sequence[int]) -> list[list[str]]:
    rows = []
    for o in outcomes:
        first, last = o.step(levels[0]), o.step(levels[-1])
        rows.append(
            [
                o.config.server,
                o.config.label,
                *[_fmt(o.throughput(c)) for c in levels],
                _fmt(first.latency_ms.p50 if first else None),
                _fmt(last.latency_ms.p99 if last else None),
                "-" if o.error else str(o.errors),
                _fmt(None if o.rss_peak is None else o.rss_peak / 1e6, 0),
                _fmt(o.load_1m),
                o.error or "",
            ]
        )
    return rows


def headers(levels: Sequence[int]) -> list[str]:
    return [
        "server",
        "configuration",
        *[f"c={c} req/s" for c in levels],
        f"p50 c={levels[0]} ms",
        f"p99 c={levels[-1]} ms",
        "errors",
        "RSS MB",
        "load",
        "note",
    ]


def targets(
    outcomes: Sequence[Outcome], ceiling_result: dict[str, Any] | None, levels: Sequence[int]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The ratios and the issue's targets on the ONNX benchmark model, as lines and as data."""
    mid = 64 if 64 in levels else levels[len(levels) // 2]
    low, high = levels[0], levels[-1]
    outcomes = [o for o in outcomes if o.config.group == "onnx"]
    ours = best(outcomes, "batchserve", mid)
    if ours is None:
        return (["batchserve did not run"] if outcomes else []), []
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | None, goal: float, higher: bool) -> None:
        ok = value is not None and (value >= goal if higher else value <= goal)
        checks.append({"target": name, "value": value, "goal": goal, "met": ok})

    thr = ours.throughput(mid) or 0.0
    lines = [f"batchserve c={mid}: {thr:.1f} req/s"]
    if ceiling_result:
        ratio = thr / ceiling_result["throughput"]
        lines.append(f"  vs in-process ceiling {ceiling_result['throughput']:.1f}/s: {ratio:.2f}x")
        check(f"c={mid} >= 0.9x in-process ceiling", ratio, 0.9, True)
    goals = {"LitServe": 1.15, "Ray Serve": 1.6, "seed (Flask+Gunicorn+torch)": 2.0}
    peers = sorted({o.config.server for o in outcomes} - {"batchserve", ON_RAY})
    for server in peers:
        theirs = best(outcomes, server, mid)
        if theirs is None:
            continue
        ratio = thr / (theirs.throughput(mid) or float("nan"))
        lines.append(
            f"  vs {server} best ({theirs.config.label}) {theirs.throughput(mid):.1f}/s: "
            f"{ratio:.2f}x" + (f" (target {goals[server]}x)" if server in goals else "")
        )
        if server in goals:
            check(f"c={mid} >= {goals[server]}x {server} best", ratio, goals[server], True)
    lines += ray_lines(outcomes, ours, low, mid, check)
    ours_low = ours.step(low)
    peer_p50 = [
        s.latency_ms.p50
        for o in outcomes
        if not o.config.server.startswith("batchserve") and (s := o.step(low)) and s.latency_ms.p50
    ]
    if ours_low and ours_low.latency_ms.p50 and peer_p50:
        check(f"c={low} p50 below every peer's", ours_low.latency_ms.p50, min(peer_p50), False)
    ours_high = ours.step(high)
    if ours_high and ours_high.latency_ms.p99 and ours_high.throughput:
        bound = 1.5 * high / ours_high.throughput * 1000.0
        p99 = ours_high.latency_ms.p99
        check(f"p99 at c={high} <= 1.5 x ({high} / throughput)", p99, bound, False)
    check("0 errors", float(ours.errors), 0.0, False)
    if ours.rss_peak is not None:
        check("RSS <= 250 MB", ours.rss_peak / 1e6, 250.0, False)
    for c in checks:
        mark = "met " if c["met"] else "MISS"
        lines.append(f"  [{mark}] {c['target']}: {_fmt(c['value'], 2)} (goal {c['goal']:.2f})")
    return lines, checks


ARTICLE = "Flask+Gunicorn+TF (the article's)"


def tf_comparison(outcomes: Sequence[Outcome], levels: Sequence[int]) -> list[str]:
    """The TensorFlow rows: batchserve on the SavedModel and on the .tflite file against
    the article's Flask app, at c=64 (or the middle level), c=1 latency and RSS."""
    mid = 64 if 64 in levels else levels[len(levels) // 2]
    low = levels[0]
    theirs = best(outcomes, ARTICLE, mid)
    lines = []
    for server in ("batchserve TF SavedModel", "batchserve TFLite"):
        ours = best(outcomes, server, mid)
        if ours is None:
            continue
        thr = ours.throughput(mid) or 0.0
        line = f"{server} c={mid}: {thr:.1f} req/s"
        if theirs is not None and theirs.throughput(mid):
            line += f", {thr / (theirs.throughput(mid) or 1.0):.2f}x the article's Flask+TF"
            ours_low, theirs_low = ours.step(low), theirs.step(low)
            if ours_low and theirs_low and ours_low.latency_ms.p50 and theirs_low.latency_ms.p50:
                line += (
                    f"; c={low} p50 {ours_low.latency_ms.p50:.1f} ms against "
                    f"{theirs_low.latency_ms.p50:.1f} ms"
                )
            if ours.rss_peak and theirs.rss_peak:
                line += f"; RSS {ours.rss_peak / 1e6:.0f} MB against {theirs.rss_peak / 1e6:.0f} MB"
        lines.append(line)
    return lines


def write_chart(
    path: Path,
    outcomes: Sequence[Outcome],
    ceiling_result: dict[str, Any] | None,
    levels: Sequence[int],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    mid = 64 if 64 in levels else levels[len(levels) // 2]
    servers = list(dict.fromkeys(o.config.server for o in outcomes))
    chosen = [b for s in servers if (b := best(outcomes, s, mid)) is not None]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 11))
    for o in chosen:
        xs = [s.concurrency for s in o.steps]
        name = f"{o.config.server}" + ("" if o.config.server == "batchserve" else " (best)")
        width = 2.5 if o.config.server == "batchserve" else 1.2
        top.plot(xs, [s.throughput for s in o.steps], "o-", lw=width, label=name)
        middle.plot(
            xs,
            [s.latency_ms.p99 or float("nan") for s in o.steps],
            "s-",
            lw=width,
            label=f"{o.config.server} p99",
        )
    if ceiling_result:
        top.axhline(
            ceiling_result["throughput"], color="black", ls="--", lw=1, label="in-process ceiling"
        )
    top.set_ylabel("throughput (req/s)")
    top.set_ylim(bottom=0)
    middle.set_ylabel("p99 latency (ms)")
    middle.set_yscale("log")
    middle.yaxis.set_major_formatter(ScalarFormatter())
    for ax in (top, middle):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(levels), [str(c) for c in levels])
        ax.set_xlabel("concurrent clients")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small", loc="best", framealpha=0.6)
    names = [o.config.server.split(" (")[0] for o in chosen]
    rss = [(o.rss_peak or 0) / 1e6 for o in chosen]
    colours = ["tab:blue" if n == "batchserve" else "tab:gray" for n in names]
    bars = bottom.bar(names, rss, color=colours)
    bottom.bar_label(bars, fmt="%.0f")
    bottom.set_ylabel("peak RSS (MB)")
    bottom.tick_params(axis="x", labelsize="small")
    fig.suptitle(
        "batchserve vs peers: MobileNet v1 224, 640x480 JPEG, same machine", fontsize="medium"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=parse_duration, default=10.0, help="per step (10s)")
    parser.add_argument("--warmup", type=parse_duration, help="per step (default: auto)")
    parser.add_argument("--concurrency", type=parse_concurrency, default=parse_concurrency(LEVELS))
    parser.add_argument("--timeout", type=parse_duration, default=30.0, help="per request")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "compare")
    parser.add_argument("--image", type=Path, help="default: samples/bench_640x480.jpg")
    parser.add_argument(
        "--only", help="comma list of servers to run (substring match), e.g. batchserve,LitServe"
    )
    parser.add_argument("--quick", action="store_true", help="one documented config per peer")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the in-process ceiling")
    parser.add_argument("--wrk", action="store_true", help="also run wrk at c=8 on batchserve")
    parser.add_argument("--profile", action="store_true", help="py-spy batchserve at c=64")
    args = parser.parse_args(argv)

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=260)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="compare-", dir=args.out))
    ensure_model(console)
    jpeg = args.image or sample_jpeg(scratch)
    levels = list(args.concurrency)
    settings = LoadSettings(
        duration=args.duration,
        warmup=auto_warmup(args.duration) if args.warmup is None else args.warmup,
        timeout=args.timeout,
    )
    configs = configurations(args.quick, scratch)
    if args.only:
        wanted = [w.strip().lower() for w in args.only.split(",")]
        configs = [c for c in configs if any(w in c.server.lower() for w in wanted)]
    if any(c.group == "tf" and not missing(c) for c in configs):
        ensure_tf_models(console)
    console.print(
        f"[bold]compare[/]: {len(configs)} configuration(s) x c={levels}, "
        f"{settings.duration:g} s + {settings.warmup:g} s warm-up a step; image {jpeg}; "
        f"{os.cpu_count()} CPU(s)"
    )

    run_ceiling = not args.no_ceiling and (not args.only or "ceiling" in args.only.lower())
    ceilings: list[dict[str, float]] = []

    def measure_ceiling(when: str) -> None:
        console.print(f"[bold]in-process ceiling[/], {when} (2 threads, own 1-thread session each)")
        result = ceiling(jpeg.read_bytes(), settings.duration, settings.warmup)
        result["load_1m"] = os.getloadavg()[0]
        console.print(
            f"    {result['throughput']:.1f} img/s; lone image p50 {result['p50_ms']:.1f} ms; "
            f"load average {result['load_1m']:.1f}"
        )
        ceilings.append(result)

    if run_ceiling:
        measure_ceiling("first")

    outcomes: list[Outcome] = []
    wrk_result: dict[str, Any] = {}
    for config in configs:
        console.print(f"[bold]{config.server}[/]: {config.label}")
        lacking = missing(config)
        if lacking:
            note = f"not installed: {', '.join(lacking)} (pip install -e '.[peers]')"
            console.print(f"    skipped, {note}")
            outcomes.append(Outcome(config, error=note))
            continue
        extra = None
        if config.server == "batchserve" and args.wrk:

            def extra(server: ServerProcess, url: str) -> None:
                result = wrk_step(url, jpeg, settings.duration, console)
                if result is None:
                    return
                target = build_target(url, images=jpeg)
                (ours,) = run_sweep(target, [StepPlan.closed(8)], settings)
                console.print(
                    f"    bench c=8: {ours.throughput:.1f} req/s  p50 {ours.latency_ms.p50:.1f} ms"
                    f"  p99 {ours.latency_ms.p99:.1f} ms  client "
                    f"{ours.client_cpu_per_request_us or 0:.0f} µs/req "
                    f"(process {ours.client_cpu_s / max(ours.requests, 1) * 1e6:.0f} µs/req)",
                    highlight=False,
                )
                wrk_result.update({"wrk": result, "bench": ours.as_dict()})

        profile = args.out / "batchserve.pyspy.txt" if args.profile else None
        outcomes.append(
            run_config(
                config,
                jpeg,
                levels,
                settings,
                scratch,
                console,
                profile if config.server == "batchserve" else None,
                extra,
            )
        )

    ceiling_result: dict[str, Any] | None = None
    if run_ceiling:
        # Again at the end: on a shared machine the ceiling moves, and the table says how much.
        measure_ceiling("last")
        ceiling_result = {
            "throughput": float(np.mean([c["throughput"] for c in ceilings])),
            "p50_ms": float(np.mean([c["p50_ms"] for c in ceilings])),
            "runs": ceilings,
        }
    head = headers(levels)
    rows = table_rows(outcomes, levels)
    if ceiling_result:
        spread = " / ".join(f"{c['throughput']:.1f}" for c in ceilings)
        rows.insert(
            0,
            ["in-process ceiling", "2 threads x own 1-thread session, no HTTP"]
            + [_fmt(ceiling_result["throughput"]) if c > 1 else "-" for c in levels]
            + [_fmt(ceiling_result["p50_ms"]), "-", "0", "-", _fmt(ceilings[0]["load_1m"])]
            + [f"mean of first / last: {spread} img/s; p50: lone image, 2 threads"],
        )
    table = Table(title=f"batchserve vs peers ({settings.duration:g} s a step)")
    for h in head:
        table.add_column(h, justify="left" if h in ("server", "configuration", "note") else "right")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    lines, checks = targets(outcomes, ceiling_result, levels)
    tf_lines = tf_comparison(outcomes, levels)
    if tf_lines:
        lines += ["TensorFlow (the seed's Keras MobileNet, 30 classes):", *tf_lines]
    for line in lines:
        console.print(line)
    for o in outcomes:
        if o.profile:
            console.print(
                f"[bold]py-spy, {o.config.server} at c={profile_level(levels)}[/] "
                "(leaf functions, share of samples)"
            )
            for name, share in o.profile[:15]:
                console.print(f"    {share * 100:5.1f}%  {name}")

    doc = {
        "tool": "bench/compare.py",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "concurrency": levels,
            "duration_s": settings.duration,
            "warmup_s": settings.warmup,
            "timeout_s": settings.timeout,
            "image": str(jpeg),
            "model": str(MODEL_DIR),
            "tf_models": str(TF_MODELS),
        },
        "ceiling": ceiling_result,
        "results": [
            {
                "server": o.config.server,
                "group": o.config.group,
                "configuration": o.config.label,
                "command": o.config.argv(0),
                "env": o.config.env,
                "startup_s": o.startup_s,
                "load_1m": o.load_1m,
                "error": o.error,
                "rss_peak_bytes": o.rss_peak,
                "steps": [s.as_dict() for s in o.steps],
            }
            for o in outcomes
        ],
        "ratios": lines,
        "targets": checks,
        "wrk_vs_bench_c8": {
            k: ({kk: vv for kk, vv in v.items() if kk != "output"} if k == "wrk" else v)
            for k, v in wrk_result.items()
        },
        "profile": {o.config.server: o.profile for o in outcomes if o.profile},
    }
    (args.out / "compare.json").write_text(json.dumps(doc, indent=2) + "\n")
    with (args.out / "compare.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(head)
        writer.writerows(rows)
    (args.out / "compare.md").write_text(markdown(head, rows) + "\n" + "\n".join(lines) + "\n")
    write_chart(args.out / "compare.png", outcomes, ceiling_result, levels)
    console.print(f"wrote {args.out}/compare.json, .csv, .md, .png (server logs in {scratch})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
