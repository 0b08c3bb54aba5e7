"""Load-test an HTTP endpoint or a gRPC model: a closed-loop concurrency sweep, or
open-loop fixed rates.

Closed loop (default): for each --concurrency level, that many clients send back to
back for --duration after a warm-up. Open loop (--rate): requests arrive at a fixed
rate (Poisson or uniform) and latency is measured from each one's intended send
time, so a stalled server cannot hide its queue.

Each step reports requests, errors by kind, throughput, latency p50/p90/p95/p99/max,
the server's resident memory (its /metrics, or /proc with --server-pid) and the
generator's own CPU per request. --out DIR writes bench.json, bench.csv, bench.png.

Only loopback targets unless --allow-remote. Examples:

  batchserve bench                                    # shapes demo, bundled samples
  batchserve bench http://127.0.0.1:8000/v1/models/mobilenet_v1/predict \\
      --images samples/bench_640x480.jpg --concurrency 1,8,64 --duration 20s --out results
  batchserve bench http://127.0.0.1:8000/v2/models/shapes/infer --rate 50/s,100/s
  batchserve bench http://127.0.0.1:9000/predict --body-template body.json  # {{image_b64}}
  batchserve bench grpc://127.0.0.1:8001/mobilenet_v1 --images samples/bench_640x480.jpg

A grpc://HOST[:PORT]/MODEL[/versions/V] target sends v2 ModelInfer calls (raw
contents, or typed contents with --v2-encoding json); -H headers go as gRPC metadata.
Its memory comes from --metrics-url (the HTTP port's /metrics) or --server-pid.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
from pathlib import Path
from typing import Any

from rich.console import Console

import batchserve
from batchserve.bench.grpc_target import GrpcTarget, build_grpc_target, is_grpc_url
from batchserve.bench.loadgen import StepProgress, event_loop, probe
from batchserve.bench.memory import MemoryProbe, ProcessTreeMemory, PrometheusMemory
from batchserve.bench.progress import ProgressDisplay
from batchserve.bench.report import client_note, results_table, write_outputs
from batchserve.bench.stats import CONNECT
from batchserve.bench.sweep import LoadSettings, StepPlan, auto_warmup, run_sweep
from batchserve.bench.targets import (
    DEFAULT_URL,
    Endpoint,
    Target,
    TargetError,
    build_target,
    require_loopback,
)
from batchserve.flags import checked
from batchserve.units import (
    parse_concurrency,
    parse_duration,
    parse_rates,
)

DEFAULT_CONCURRENCY = "1,2,4,8,16,32,64,100"


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        nargs="?",
        default=DEFAULT_URL,
        help=f"an http:// URL or grpc://HOST[:PORT]/MODEL (default: {DEFAULT_URL})",
    )
    what = parser.add_argument_group("what to send")
    what.add_argument(
        "--images",
        type=Path,
        help="an image file or a folder of them, sent in rotation (default: bundled samples)",
    )
    what.add_argument(
        "--format",
        choices=("auto", "image", "v2", "template"),
        default="auto",
        help="image: raw body; v2: the image as a v2 infer tensor; template: --body-template. "
        "auto: template if given, v2 for a /v2/.../infer URL, else image",
    )
    what.add_argument(
        "--body-template",
        type=Path,
        help="a body file; {{image_b64}} in it is replaced by each image in base64",
    )
    what.add_argument(
        "--content-type", default="application/json", help="of a template body (default JSON)"
    )
    what.add_argument("--method", default="POST", help="HTTP method (default POST)")
    what.add_argument(
        "-H",
        "--header",
        action="append",
        type=_header,
        default=[],
        help="extra request header 'Name: value' (repeatable; also sent to /metrics)",
    )
    what.add_argument(
        "--v2-encoding",
        choices=("binary", "json"),
        default="binary",
        help="v2 tensors as the binary extension (default) or JSON lists; over gRPC, raw "
        "or typed contents",
    )
    what.add_argument("--v2-input", help="v2 input tensor name (default: asked of the server)")
    what.add_argument(
        "--preprocessing",
        type=Path,
        help="v2: YAML preprocessing block (model.yaml's) when the server does not report one",
    )

    load = parser.add_argument_group("load")
    load.add_argument(
        "--concurrency",
        type=checked(parse_concurrency, "concurrency"),
        default=parse_concurrency(DEFAULT_CONCURRENCY),
        help=f"closed loop: client counts, one step each (default {DEFAULT_CONCURRENCY})",
    )
    load.add_argument(
        "--rate",
        type=checked(parse_rates, "rate"),
        help="open loop instead: arrival rates, one step each, e.g. 80/s or 20/s,40/s",
    )
    load.add_argument(
        "--arrival",
        choices=("poisson", "uniform"),
        default="poisson",
        help="open loop: gaps between arrivals (default poisson)",
    )
    load.add_argument(
        "--max-outstanding",
        type=int,
        default=512,
        help="open loop: in-flight cap; past it requests are dropped and counted (default 512)",
    )
    load.add_argument(
        "--duration",
        type=checked(parse_duration, "duration"),
        default=60.0,
        help="measured time per step, e.g. 60s, 500ms (default 60s)",
    )
    load.add_argument(
        "--warmup",
        type=checked(parse_duration, "duration"),
        help="unmeasured time before each step (default: a tenth of --duration, 0.5-5 s)",
    )
    load.add_argument(
        "--timeout",
        type=checked(parse_duration, "duration"),
        default=30.0,
        help="per request, and per connection opened (default 30s)",
    )
    load.add_argument("--seed", type=int, default=0, help="open loop: arrival times (default 0)")

    server = parser.add_argument_group("server memory")
    server.add_argument(
        "--metrics-url",
        help="Prometheus metrics to read process_resident_memory_bytes from "
        "(default: the target's /metrics)",
    )
    server.add_argument("--no-metrics", action="store_true", help="do not read server memory")
    server.add_argument(
        "--server-pid",
        type=int,
        help="read memory from /proc: this process and its children (servers without metrics)",
    )

    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, help="write bench.json, bench.csv and bench.png here")
    output.add_argument("--title", help="chart and table title (default: the URL)")
    output.add_argument("--no-progress", action="store_true", help="no live progress line")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a target that is not loopback (the load is a flood: only your own servers)",
    )


def _memory_probe(args: argparse.Namespace, target: Target | GrpcTarget) -> MemoryProbe | None:
    if args.server_pid is not None:
        return ProcessTreeMemory(args.server_pid)
    if args.no_metrics or (isinstance(target, GrpcTarget) and not args.metrics_url):
        return None  # a gRPC port has no /metrics of its own
    url = args.metrics_url or f"{target.endpoint.base}/metrics"
    if not args.allow_remote:
        require_loopback(Endpoint.parse(url).host)
    metrics = PrometheusMemory(url, args.header)
    return metrics if metrics.read() is not None else None


def _metadata(
    args: argparse.Namespace,
    target: Target | GrpcTarget,
    settings: LoadSettings,
    plans: list[StepPlan],
    memory: MemoryProbe | None,
) -> dict[str, Any]:
    return {
        "tool": "batchserve bench",
        "batchserve_version": batchserve.__version__,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "target": {
            "url": target.url,
            "method": target.method,
            "description": target.description,
            "requests_in_rotation": len(target.requests),
            "mean_request_bytes": round(target.mean_body_bytes),
        },
        "settings": {
            "mode": plans[0].mode,
            "concurrency": [p.concurrency for p in plans if p.concurrency is not None],
            "rates": [p.rate for p in plans if p.rate is not None],
            "duration_s": settings.duration,
            "warmup_s": settings.warmup,
            "timeout_s": settings.timeout,
            "arrival": settings.arrival,
            "seed": settings.seed,
            "max_outstanding": settings.max_outstanding,
        },
        "memory_source": memory.description if memory else None,
    }


def _console(stderr: bool = False) -> Console:
    """A terminal's own width, or a wide one for logs so that the table is not cut."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=160)
    return console


def _build_target(args: argparse.Namespace) -> Target | GrpcTarget:
    if is_grpc_url(args.url):
        if args.format not in ("auto", "v2"):
            raise TargetError("a grpc:// target sends v2 tensors: --format must be auto or v2")
        return build_grpc_target(
            args.url,
            images=args.images,
            headers=args.header,
            v2_encoding=args.v2_encoding,
            v2_input=args.v2_input,
            preprocessing=args.preprocessing,
            allow_remote=args.allow_remote,
        )
    return build_target(
        args.url,
        images=args.images,
        body_format=args.format,
        template=args.body_template,
        content_type=args.content_type,
        method=args.method.upper(),
        headers=args.header,
        v2_encoding=args.v2_encoding,
        v2_input=args.v2_input,
        preprocessing=args.preprocessing,
        allow_remote=args.allow_remote,
    )


def run(args: argparse.Namespace) -> int:
    # One line per metrics scrape, every second, would bury the results.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    console, err = _console(), _console(stderr=True)
    try:
        target = _build_target(args)
        memory = _memory_probe(args, target)
    except TargetError as exc:
        err.print(f"[red]bench:[/] {exc}")
        return 2
    settings = LoadSettings(
        duration=args.duration,
        warmup=auto_warmup(args.duration) if args.warmup is None else args.warmup,
        timeout=args.timeout,
        arrival=args.arrival,
        seed=args.seed,
        max_outstanding=args.max_outstanding,
    )
    plans = (
        [StepPlan.open(r) for r in args.rate]
        if args.rate
        else [StepPlan.closed(c) for c in args.concurrency]
    )

    with event_loop() as run_async:
        kind, detail = run_async(probe(target, settings.timeout))
    if kind == CONNECT:
        err.print(f"[red]bench:[/] nothing answers at {target.url}: {detail}")
        return 1
    if kind is not None:
        err.print(f"[yellow]bench: a first request got {kind}:[/] {detail[:200]}")

    console.print(f"[bold]{target.description}[/]")
    console.print(
        f"{len(plans)} step(s) of {settings.duration:g} s after {settings.warmup:g} s warm-up; "
        f"timeout {settings.timeout:g} s; memory: {memory.description if memory else 'n/a'}"
    )
    progress = StepProgress()
    display = ProgressDisplay(console, progress, len(plans), live=not args.no_progress)
    with display:
        steps = run_sweep(
            target,
            plans,
            settings,
            memory=memory,
            progress=progress,
            on_step_start=lambda _: display.begin_step(),
            on_step_end=display.end_step,
        )
    if not steps:
        err.print("[red]bench:[/] interrupted before the first step ended")
        return 130
    title = args.title or target.url
    console.print(results_table(steps, title))
    note = client_note(steps)
    console.print(note)
    for kind_name, first in {k: v for s in steps for k, v in s.first_errors.items()}.items():
        console.print(f"first {kind_name}: {first[:160]}", style="yellow")
    if args.out:
        meta = _metadata(args, target, settings, plans, memory)
        meta["client_note"] = note
        paths = write_outputs(args.out, steps, meta, title)
        console.print("wrote " + ", ".join(str(p) for p in paths))
    if len(steps) < len(plans):
        return 130
    return 0 if any(s.ok for s in steps) else 1
