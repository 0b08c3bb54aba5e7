"""batchserve against what a user would pick instead, on this machine, in one run.

Each server is started on a free loopback port with the same model and the same
640x480 JPEG, swept at the same concurrency levels with the same client, and stopped:

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

What is measured:

- ``--model mobilenet`` (MobileNet v1 1.0/224, ``models-bench``, built when missing) or
  ``demo`` (the bundled ``models/shapes``, 64x64: per-request overhead dominates).
  Every ONNX peer and the ceiling load the same model (PEER_MODEL_DIR); batchserve is
  served a repository holding just that model. The TF rows are MobileNet only.
- ``--route image`` (the JPEG, decoded by each server) or ``tensor`` (no decode: the
  sample decoded once, sent as raw float32; batchserve gets the v2 binary tensor route
  as tritonclient sends it, each ONNX peer a ``/tensor`` route; the ceiling is then
  inference alone). Rows without a tensor route are skipped with a note.
- ``--client bench`` (`batchserve bench`'s generator) or ``wrk`` (the Debian package,
  ``make bench-tools``; bench/wrk_runner.py): the client shares the cores with the
  server, and wrk costs them less per request.
- ``--peer-codec hand`` (the default: the peers and the ceiling decode with the frozen
  hand-written decode of bench/peers/hand_codec.py, as a user would write it) or
  ``batchserve`` (batchserve's current ImageCodec, to compare the serving machinery).
- Each step records the server process tree's CPU per request (/proc, user + system)
  and its RSS.

Peers need the optional extra (``pip install -e '.[peers]'``); one that is not
installed is skipped with a note. Writes compare.json, compare.csv, compare.md and
compare.png to --out, and prints the table, the ratios and issue 13's targets.

    .venv/bin/python bench/compare.py --duration 10s --out bench-results/compare
    .venv/bin/python bench/compare.py --quick --client wrk --model demo --route tensor
    .venv/bin/python bench/compare.py --duration 5s --only tf   # the TensorFlow rows only
    .venv/bin/python bench/compare.py --only batchserve,Flask --repeat 3   # A B A B A B

--quick runs one documented configuration per peer instead of all of them; --only and
--skip choose servers by substring; --repeat N runs the chosen rows in alternation N
times and reports the median ratio per level; --profile records batchserve with
py-spy during the c=64 step.
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
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from rich.console import Console

from batchserve.bench.loadgen import StepProgress
from batchserve.bench.memory import ProcessTreeMemory
from batchserve.bench.stats import StepResult
from batchserve.bench.sweep import LoadSettings, StepPlan, auto_warmup, run_sweep
from batchserve.bench.targets import (
    IMAGE_MEDIA_TYPES,
    Endpoint,
    Payload,
    Target,
    encode_request,
    require_loopback,
)
from batchserve.codecs.v2 import HEADER_LENGTH_HEADER
from batchserve.units import parse_concurrency, parse_duration

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "peers"
sys.path.insert(0, str(PEERS))

sys.path.insert(0, str(ROOT / "bench"))

from alternation import median_outcomes, median_ratios  # noqa: E402  (bench/ is not a package)
from ceiling import ceiling  # noqa: E402
from common import CODECS, image_codec, ort_session  # noqa: E402
from compare_report import (  # noqa: E402
    ceiling_row,
    headers,
    markdown,
    rich_table,
    table_rows,
    write_chart,
)
from compare_rows import ON_RAY, Body, Config, Outcome  # noqa: E402
from compare_targets import targets, tf_comparison  # noqa: E402
from engine import sample_jpeg  # noqa: E402  (the shared 640x480 JPEG, or one made like it)
from launch import ServerProcess, free_port  # noqa: E402
from server_cpu import StepCpuMeter  # noqa: E402
from wrk_runner import INSTALL_HINT, Post, find_wrk, wrk_sweep  # noqa: E402

__all__ = ["MODEL_DIR", "PEERS", "PREDICT", "Config", "Outcome", "ensure_model", "run_config"]

MODEL_DIR = ROOT / "models-bench" / "mobilenet_v1"
PREDICT = "/v1/models/mobilenet_v1/predict"
TF_MODELS = ROOT / "models-tf"
#: --model: the directory each server loads (model.yaml, 1/model.onnx).
MODELS = {"mobilenet": MODEL_DIR, "demo": ROOT / "models" / "shapes"}
LEVELS = "1,8,64,100"
Route = Literal["image", "tensor"]
Client = Literal["bench", "wrk"]


@dataclass(frozen=True)
class Workload:
    """What every row of one run is sent and how: model, route, client, peers' decode."""

    model: str = "mobilenet"
    route: Route = "image"
    client: Client = "bench"
    peer_codec: str = "hand"
    jpeg: Path = ROOT / "samples" / "bench_640x480.jpg"
    #: --route tensor: the sample decoded once (the hand codec), raw float32 bytes.
    tensor: bytes = b""
    tensor_shape: tuple[int, ...] = ()
    input_name: str = ""
    wrk_threads: int = 1

    @property
    def model_dir(self) -> Path:
        return MODELS[self.model]

    @property
    def model_name(self) -> str:
        return self.model_dir.name

    def describe(self) -> str:
        model = "MobileNet v1 224" if self.model == "mobilenet" else "demo model (shapes, 64x64)"
        route = "640x480 JPEG" if self.route == "image" else "v2/raw float32 tensors, no decode"
        return f"{model}, {route}, client {self.client}, peers' codec {self.peer_codec}"


def prepared_workload(
    model: str, route: Route, client: Client, peer_codec: str, jpeg: Path, wrk_threads: int = 1
) -> Workload:
    """The workload, with the tensor of --route tensor decoded once (same bytes for all)."""
    if route != "tensor":
        return Workload(model, route, client, peer_codec, jpeg, wrk_threads=wrk_threads)
    tensor = image_codec("hand").decode(jpeg.read_bytes())
    name = ort_session(1).get_inputs()[0].name
    raw = tensor.astype("<f4").tobytes()
    return Workload(model, route, client, peer_codec, jpeg, raw, tensor.shape, name, wrk_threads)


def v2_binary_body(input_name: str, shape: Sequence[int], raw: bytes) -> tuple[bytes, int]:
    """(body, JSON header length): a v2 infer request exactly as tritonclient.http builds
    it for one FP32 input set with binary data and no outputs named."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        },
        separators=(",", ":"),
    ).encode()
    return header + raw, len(header)


def request_for(config: Config, workload: Workload, port: int) -> Post:
    """The one request a row's clients send, for this workload."""
    url = f"http://127.0.0.1:{port}{config.path}"
    body: Body = config.body
    if body == "image":
        media = IMAGE_MEDIA_TYPES.get(workload.jpeg.suffix.lower(), "image/jpeg")
        return Post(url, workload.jpeg.read_bytes(), media)
    if body == "b64json":
        doc = {"image_b64": base64.b64encode(workload.jpeg.read_bytes()).decode()}
        return Post(url, json.dumps(doc).encode(), "application/json")
    if body == "tensor":
        return Post(url, workload.tensor, "application/octet-stream")
    if body == "b64tensor":
        doc = {"tensor_b64": base64.b64encode(workload.tensor).decode()}
        return Post(url, json.dumps(doc).encode(), "application/json")
    raw, length = v2_binary_body(workload.input_name, workload.tensor_shape, workload.tensor)
    return Post(url, raw, "application/octet-stream", ((HEADER_LENGTH_HEADER, str(length)),))


def bench_target(post: Post) -> Target:
    """`batchserve bench`'s target for one fixed request (encoded once, as it does)."""
    endpoint = Endpoint.parse(post.url)
    require_loopback(endpoint.host)
    payload = Payload(post.body, post.content_type, tuple(post.headers))
    wire = encode_request(endpoint, "POST", payload)
    return Target(endpoint, "POST", (wire,), f"POST {post.url} ({len(post.body)} bytes)")


def single_model_repository(scratch: Path, model_dir: Path) -> Path:
    """A repository holding only `model_dir`, so that the server loads that one model."""
    repository = scratch / f"repository-{model_dir.name}"
    repository.mkdir(exist_ok=True)
    link = repository / model_dir.name
    if not link.exists():
        link.symlink_to(model_dir, target_is_directory=True)
    return repository


def configurations(quick: bool, scratch: Path, workload: Workload | None = None) -> list[Config]:
    """Every server and configuration of the comparison (--quick: the documented default),
    with the route and body of the workload; rows that cannot serve it say why."""
    workload = workload or Workload()
    tensor = workload.route == "tensor"
    name = workload.model_name
    py = sys.executable
    gunicorn = [py, "-m", "gunicorn", "--chdir", str(PEERS), "--log-level", "warning"]
    own = MODEL_DIR.parent if workload.model == "mobilenet" else None
    ours_path = f"/v2/models/{name}/infer" if tensor else f"/v1/models/{name}/predict"
    ours_body: Body = "v2" if tensor else "image"
    peer_path, peer_body = ("/tensor", "tensor") if tensor else ("/predict", "image")
    seed_unsupported = (
        "the seed's app has no tensor route" if tensor
        else "the seed's torch model is MobileNet 224 only" if workload.model != "mobilenet"
        else None
    )  # fmt: skip
    tf_unsupported = (
        "the TF rows are MobileNet only" if workload.model != "mobilenet"
        else "the article's app has no tensor route" if tensor
        else None
    )  # fmt: skip

    def batchserve(p: int, repository: Path | None = None) -> list[str]:
        repository = repository or own or single_model_repository(scratch, workload.model_dir)
        return [py, "-m", "batchserve", "serve", "--repository", str(repository),
                *f"--host 127.0.0.1 --port {p}".split()]  # fmt: skip

    def flask(workers: int, threads: int, app: str = "flask_app") -> Callable[[int], list[str]]:
        return lambda p: [*gunicorn, *f"-w {workers} --threads {threads} -b 127.0.0.1:{p}".split(),
                          f"{app}:app"]  # fmt: skip

    def batchserve_tf(model: str) -> Callable[[int], list[str]]:
        return lambda p: batchserve(p, single_model_repository(scratch, TF_MODELS / model))

    def script(file: str, options: str) -> Callable[[int], list[str]]:
        return lambda p: [py, str(PEERS / file), "--port", str(p), *options.split()]

    def batchserve_on_ray(replicas: int, cpus: int) -> Callable[[int], list[str]]:
        return lambda p: [*batchserve(p), "--ray", *f"--ray-replicas {replicas}".split(),
                          *f"--ray-num-cpus {cpus}".split()]  # fmt: skip

    configs = [
        Config("batchserve", "default config", batchserve, path=ours_path, body=ours_body),
        *[
            Config(
                ON_RAY,
                label,
                batchserve_on_ray(replicas, cpus),
                path=ours_path,
                body=ours_body,
                ready_timeout=300.0,
                needs=("ray",),
            )
            for label, replicas, cpus in [
                ("2 replicas x 1 CPU", 2, 1),
                ("1 replica x 2 CPUs (what the proxy costs)", 1, 2),
            ]
        ],
        Config(
            "seed (Flask+Gunicorn+torch)",
            "1 worker x 2 threads, eager torch",
            flask(1, 2),
            env={"PEER_BACKEND": "torch"},
            needs=("flask", "gunicorn", "torch"),
            unsupported=seed_unsupported,
        ),
    ]
    for workers, threads, ort in [(1, 2, 1)] if quick else [(1, 2, 1), (1, 2, 2), (2, 1, 1)]:
        configs.append(
            Config(
                "Flask+Gunicorn+ORT",
                f"{workers} worker x {threads} threads, ORT {ort}",
                flask(workers, threads),
                path=peer_path,
                body=peer_body,
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
                script("litserve_app.py", f"--workers {n} {options} --route {workload.route}"),
                path=peer_path,
                body="b64tensor" if tensor else "b64json",
                needs=("litserve",),
            )
        )
        configs.append(
            Config(
                "Ray Serve",
                f"{n} replica(s), {batching}, ORT {threads}",
                script("ray_app.py", f"--replicas {n} {options}"),
                path=peer_path,
                body=peer_body,
                ready_timeout=300.0,
                needs=("ray",),
            )
        )
    configs.append(
        Config(
            "FastAPI pool (hand-written)",
            "2 one-thread sessions",
            script("fastapi_pool.py", ""),
            path=peer_path,
            body=peer_body,
        )
    )
    for server, label, model, needs in [
        ("batchserve TF SavedModel", "default config", "mobilenet_savedmodel", ("tensorflow",)),
        ("batchserve TFLite", "default config, LiteRT (no TensorFlow in the process)",
         "mobilenet_tflite", ("ai_edge_litert",)),
    ]:  # fmt: skip
        configs.append(
            Config(
                server,
                label,
                batchserve_tf(model),
                path=f"/v1/models/{model}/predict",
                ready_timeout=240.0,
                needs=needs,
                group="tf",
                unsupported=tf_unsupported,
            )
        )
    configs.append(
        Config(
            "Flask+Gunicorn+TF (the article's)",
            "1 worker x 2 threads, model.predict per request",
            flask(1, 2, "flask_tf_app"),
            ready_timeout=240.0,
            needs=("flask", "gunicorn", "tensorflow"),
            group="tf",
            unsupported=tf_unsupported,
        )
    )
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
    *,
    workload: Workload | None = None,
) -> Outcome:
    """Start the server, sweep it with the workload's client, stop it."""
    workload = workload or Workload(jpeg=jpeg)
    outcome = Outcome(config)
    port = free_port()
    post = request_for(config, workload, port)
    slug = re.sub(r"[^a-z0-9]+", "-", (config.server + config.label).lower())
    log = scratch / f"{slug}.log"
    started = time.monotonic()
    env = {"PYTHONPATH": os.pathsep.join([str(PEERS), os.environ.get("PYTHONPATH", "")])}
    server = ServerProcess(config.argv(port), log, env={**env, **config.env}, cwd=ROOT)
    try:

        def ready() -> bool:
            headers = {"content-type": post.content_type, **dict(post.headers)}
            return httpx.post(post.url, content=post.body, headers=headers, timeout=30).is_success

        server.wait_ready(ready, config.ready_timeout)
        outcome.startup_s = time.monotonic() - started
        outcome.load_1m = os.getloadavg()[0]
        spy: list[PySpy] = []
        meter = StepCpuMeter(server.pid)
        progress = StepProgress()

        def on_start(plan: StepPlan) -> None:
            server.tree()  # Ray and LitServe start processes late: remember them for the stop
            if profile is not None and plan.concurrency == profile_level(levels):
                spy.append(PySpy(server.pid, settings.warmup + settings.duration, profile))
            if workload.client == "bench":
                meter.watch(progress, settings.duration)

        def on_end(step: StepResult) -> None:
            cpu = meter.per_request_us(step.requests)
            outcome.server_cpu_us[step.concurrency or 0] = cpu
            lat = step.latency_ms
            console.print(
                f"    {step.label:>6}: {step.throughput:7.1f} req/s  p50 "
                f"{lat.p50 or float('nan'):7.1f} ms  p99 {lat.p99 or float('nan'):7.1f} ms  "
                f"errors {step.error_total}  RSS {(step.rss_peak_bytes or 0) / 1e6:.0f} MB  "
                f"server {cpu or float('nan'):.0f} µs/req  client "
                f"{step.client_cpu_per_request_us or 0:.0f} µs/req",
                highlight=False,
            )

        memory = ProcessTreeMemory(server.pid)
        if workload.client == "wrk":
            outcome.steps = wrk_sweep(
                post,
                levels,
                settings,
                memory=memory,
                threads=workload.wrk_threads,
                on_step_start=on_start,
                on_step_end=on_end,
                on_measure=lambda opening: meter.open() if opening else meter.close(),
                log=scratch / f"{slug}.wrk.txt",
            )
        else:
            outcome.steps = run_sweep(
                bench_target(post),
                [StepPlan.closed(c) for c in levels],
                settings,
                memory=memory,
                progress=progress,
                on_step_start=on_start,
                on_step_end=on_end,
            )
        if spy:
            outcome.profile = spy[0].summary()
    except RuntimeError as exc:
        outcome.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        console.print(f"    [red]failed:[/] {exc}")
    finally:
        server.stop()
    return outcome


def profile_level(levels: Sequence[int]) -> int:
    """The step that --profile records: c=64, or the middle level."""
    return 64 if 64 in levels else levels[len(levels) // 2]


def wrk_version() -> str | None:
    wrk = find_wrk()
    if wrk is None:
        return None
    run = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    return (run.stdout or run.stderr).splitlines()[0] if (run.stdout or run.stderr) else None


def select(configs: Sequence[Config], only: str | None, skip: str | None) -> list[Config]:
    """--only keeps, --skip drops, servers whose name holds one of the comma list's words."""

    def words(text: str | None) -> list[str]:
        return [w.strip().lower() for w in (text or "").split(",") if w.strip()]

    keep, drop = words(only), words(skip)
    return [
        c
        for c in configs
        if (not keep or any(w in c.server.lower() for w in keep))
        and not any(w in c.server.lower() for w in drop)
    ]


def wants_ceiling(args: argparse.Namespace) -> bool:
    """The ceiling runs unless --no-ceiling, an --only without it, or a --skip naming it."""
    if args.no_ceiling or "ceiling" in (args.skip or "").lower():
        return False
    return not args.only or "ceiling" in args.only.lower()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
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
    parser.add_argument("--skip", help="comma list of servers to leave out (substring match)")
    parser.add_argument("--quick", action="store_true", help="one documented config per peer")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the in-process ceiling")
    parser.add_argument("--model", choices=sorted(MODELS), default="mobilenet")
    parser.add_argument("--route", choices=["image", "tensor"], default="image")
    parser.add_argument(
        "--client", choices=["bench", "wrk"], default="bench", help="what drives every step"
    )
    parser.add_argument("--wrk", action="store_true", help="an alias of --client wrk")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk -t (1)")
    parser.add_argument(
        "--peer-codec",
        choices=CODECS,
        default="hand",
        help="the peers' and the ceiling's decode: the frozen hand-written one, or batchserve's",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the rows N times in alternation (A B A B)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy batchserve at c=64")
    args = parser.parse_args(argv)
    if args.wrk:
        args.client = "wrk"
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def mean_ceiling(runs: list[dict[str, float]]) -> dict[str, Any] | None:
    if not runs:
        return None
    return {
        "throughput": float(np.mean([c["throughput"] for c in runs])),
        "p50_ms": float(np.mean([c["p50_ms"] for c in runs])),
        "cpu_us_per_request": float(np.mean([c["cpu_us_per_request"] for c in runs])),
        "runs": runs,
    }


def run_round(
    configs: Sequence[Config],
    workload: Workload,
    levels: Sequence[int],
    settings: LoadSettings,
    scratch: Path,
    console: Console,
    number: int,
    profile: Path | None,
) -> list[Outcome]:
    """One round: every row in order; a row that cannot run is an outcome with its note."""
    outcomes = []
    for config in configs:
        lacking = missing(config)
        note = config.unsupported or (
            f"not installed: {', '.join(lacking)} (pip install -e '.[peers]')" if lacking else None
        )
        if note:
            if number == 1:
                console.print(f"[bold]{config.server}[/]: {config.label}\n    skipped, {note}")
            outcomes.append(Outcome(config, error=note, round=number))
            continue
        which = f" (round {number})" if number > 1 else ""
        console.print(f"[bold]{config.server}[/]: {config.label}{which}")
        ours = config.server == "batchserve"
        outcome = run_config(
            config,
            workload.jpeg,
            levels,
            settings,
            scratch,
            console,
            profile if ours else None,
            workload=workload,
        )
        outcome.round = number
        outcomes.append(outcome)
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=260)
    if args.client == "wrk" and find_wrk() is None:
        console.print(f"[red]--client wrk:[/] {INSTALL_HINT}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="compare-", dir=args.out))
    if args.model == "mobilenet":
        ensure_model(console)
    # Read by bench/peers/common.py in this process (the ceiling) and in every peer's.
    os.environ["PEER_MODEL_DIR"] = str(MODELS[args.model])
    os.environ["PEER_CODEC"] = args.peer_codec
    jpeg = args.image or sample_jpeg(scratch)
    workload = prepared_workload(
        args.model, args.route, args.client, args.peer_codec, jpeg, args.wrk_threads
    )
    levels = list(args.concurrency)
    settings = LoadSettings(
        duration=args.duration,
        warmup=auto_warmup(args.duration) if args.warmup is None else args.warmup,
        timeout=args.timeout,
    )
    configs = select(configurations(args.quick, scratch, workload), args.only, args.skip)
    if any(c.group == "tf" and not c.unsupported and not missing(c) for c in configs):
        ensure_tf_models(console)
    console.print(
        f"[bold]compare[/]: {len(configs)} configuration(s) x c={levels}, "
        f"{settings.duration:g} s + {settings.warmup:g} s warm-up a step, "
        f"{args.repeat} round(s); {workload.describe()}; image {jpeg}; {os.cpu_count()} CPU(s)"
    )

    ceilings: list[dict[str, float]] = []
    what = "inference only" if args.route == "tensor" else "decode + infer"

    def measure_ceiling(when: str) -> dict[str, float]:
        console.print(f"[bold]in-process ceiling[/], {when} (2 threads x 1-thread session, {what})")
        body = workload.tensor if args.route == "tensor" else jpeg.read_bytes()
        result = ceiling(body, settings.duration, settings.warmup, args.route)
        result["load_1m"] = os.getloadavg()[0]
        console.print(
            f"    {result['throughput']:.1f}/s; lone p50 {result['p50_ms']:.1f} ms; "
            f"CPU {result['cpu_us_per_request']:.0f} µs/req; load {result['load_1m']:.1f}"
        )
        ceilings.append(result)
        return result

    run_ceiling = wants_ceiling(args)
    profile = args.out / "batchserve.pyspy.txt" if args.profile else None
    rounds: list[list[Outcome]] = []
    round_ceilings: list[dict[str, Any] | None] = []
    for number in range(1, args.repeat + 1):
        when = "first" if args.repeat == 1 else f"round {number}"
        round_ceilings.append(measure_ceiling(when) if run_ceiling else None)
        rounds.append(
            run_round(configs, workload, levels, settings, scratch, console, number, profile)
        )
    if run_ceiling:
        # Again at the end: on a shared machine the ceiling moves, and the table says how much.
        measure_ceiling("last")
    outcomes = rounds[0] if args.repeat == 1 else median_outcomes(rounds)
    ceiling_result = mean_ceiling(ceilings)
    report(args, workload, settings, levels, outcomes, ceiling_result, rounds, round_ceilings,
           console, scratch)  # fmt: skip
    return 0


def report(
    args: argparse.Namespace,
    workload: Workload,
    settings: LoadSettings,
    levels: list[int],
    outcomes: list[Outcome],
    ceiling_result: dict[str, Any] | None,
    rounds: list[list[Outcome]],
    round_ceilings: list[dict[str, Any] | None],
    console: Console,
    scratch: Path,
) -> None:
    """Print the table, ratios and targets; write compare.json, .csv, .md and .png."""
    head = headers(levels)
    rows = table_rows(outcomes, levels)
    if ceiling_result:
        rows.insert(0, ceiling_row(ceiling_result, levels, workload.route))
    median = f", median of {args.repeat} rounds" if args.repeat > 1 else ""
    title = f"batchserve vs peers: {workload.describe()} ({settings.duration:g} s a step{median})"
    console.print(rich_table(title, head, rows))
    lines, checks = targets(outcomes, ceiling_result, levels)
    tf_lines = tf_comparison(outcomes, levels)
    if tf_lines:
        lines += ["TensorFlow (the seed's Keras MobileNet, 30 classes):", *tf_lines]
    alternation: dict[str, Any] = {}
    if args.repeat > 1:
        alt_lines, alternation = median_ratios(rounds, round_ceilings, levels)
        lines += alt_lines
    for line in lines:
        console.print(line, markup=False)
    for o in outcomes:
        if o.profile:
            console.print(
                f"[bold]py-spy, {o.config.server} at c={profile_level(levels)}[/] "
                "(leaf functions, share of samples)"
            )
            for name, share in o.profile[:15]:
                console.print(f"    {share * 100:5.1f}%  {name}")

    def result(o: Outcome) -> dict[str, Any]:
        return {
            "server": o.config.server,
            "group": o.config.group,
            "configuration": o.config.label,
            "round": o.round,
            "path": o.config.path,
            "body": o.config.body,
            "command": o.config.argv(0),
            "env": o.config.env,
            "startup_s": o.startup_s,
            "load_1m": o.load_1m,
            "error": o.error,
            "rss_peak_bytes": o.rss_peak,
            "server_cpu_per_request_us": o.server_cpu_us,
            "steps": o.steps_dict(),
        }

    doc = {
        "tool": "bench/compare.py",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "concurrency": levels,
            "duration_s": settings.duration,
            "warmup_s": settings.warmup,
            "timeout_s": settings.timeout,
            "image": str(workload.jpeg),
            "model": args.model,
            "model_dir": str(workload.model_dir),
            "route": workload.route,
            "client": workload.client,
            "wrk": wrk_version() if workload.client == "wrk" else None,
            "wrk_threads": workload.wrk_threads if workload.client == "wrk" else None,
            "peer_codec": workload.peer_codec,
            "repeat": args.repeat,
            "tf_models": str(TF_MODELS),
            "argv": sys.argv[1:],
        },
        "ceiling": ceiling_result,
        "results": [result(o) for o in outcomes],
        "ratios": lines,
        "targets": checks,
        "alternation": alternation or None,
        "rounds": [[result(o) for o in r] for r in rounds] if args.repeat > 1 else None,
        "profile": {o.config.server: o.profile for o in outcomes if o.profile},
    }
    (args.out / "compare.json").write_text(json.dumps(doc, indent=2) + "\n")
    with (args.out / "compare.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(head)
        writer.writerows(rows)
    (args.out / "compare.md").write_text(
        f"{title}\n\n" + markdown(head, rows) + "\n" + "\n".join(lines) + "\n"
    )
    write_chart(args.out / "compare.png", outcomes, ceiling_result, levels, title)
    console.print(f"wrote {args.out}/compare.json, .csv, .md, .png (server logs in {scratch})")


if __name__ == "__main__":
    raise SystemExit(main())
