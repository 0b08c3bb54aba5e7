"""Soak: many clients for a long time on MobileNet v1 1.0/224, the server's RSS sampled
every second. Passes with 0 errors and RSS flat within 5 % after the warm-up.

    .venv/bin/python bench/soak.py                       # the article's run: c=100, 60 s
    .venv/bin/python bench/soak.py --duration 10m        # the long one
    .venv/bin/python bench/soak.py --url http://127.0.0.1:8000/v1/models/mobilenet_v1/predict

Without --url it starts `batchserve serve` on the benchmark model (models-bench, built
when missing) on a free loopback port and stops it by PID at the end. The load is
`batchserve bench`'s closed loop (the same generator and bounds). "Flat" compares the
RSS after the warm-up with the RSS at the end of the warm-up: the largest excess
(peak / start - 1) and the drift of a least-squares line over the rest of the run
(as a share of the starting RSS) must both stay within --rss-tolerance. Writes
soak.json and soak.png (RSS and throughput per second) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))

from compare import MODEL_DIR, PREDICT, ensure_model
from engine import sample_jpeg
from launch import ServerProcess, free_port
from rich.console import Console

from batchserve.bench.loadgen import StepProgress
from batchserve.bench.memory import ProcessTreeMemory, PrometheusMemory
from batchserve.bench.sweep import LoadSettings, StepPlan, run_sweep
from batchserve.bench.targets import build_target
from batchserve.units import parse_duration


class Recorder:
    """Once a second: the server's RSS and the requests completed so far."""

    def __init__(self, memory: ProcessTreeMemory | PrometheusMemory, progress: StepProgress):
        self.memory, self.progress = memory, progress
        self.samples: list[dict[str, float | int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-recorder", daemon=True)
        self._started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append(
                {
                    "t": round(time.monotonic() - self._started, 2),
                    "rss": self.memory.read(),
                    "completed": self.progress.completed,
                    "errors": self.progress.errors,
                    "measuring": self.progress.measuring,
                    "load_1m": os.getloadavg()[0],
                }
            )

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def flatness(samples: list[dict], warmup_s: float) -> dict[str, float | None]:
    """RSS after the warm-up against its value at the end of the warm-up."""
    after = [(s["t"], s["rss"]) for s in samples if s["t"] >= warmup_s and s["rss"]]
    if len(after) < 2:
        return {"start_mb": None, "peak_excess": None, "drift": None}
    t = np.array([a[0] for a in after])
    rss = np.array([a[1] for a in after], dtype=float)
    start = rss[0]
    slope, _ = np.polyfit(t - t[0], rss, 1)
    return {
        "start_mb": start / 1e6,
        "end_mb": rss[-1] / 1e6,
        "peak_mb": rss.max() / 1e6,
        "peak_excess": float(rss.max() / start - 1),
        "drift": float(slope * (t[-1] - t[0]) / start),
    }


def plot(samples: list[dict], path: Path, title: str, warmup_s: float) -> None:
    t = np.array([s["t"] for s in samples])
    rss = np.array([(s["rss"] or 0) / 1e6 for s in samples])
    done = np.array([s["completed"] for s in samples], dtype=float)
    rate = np.diff(done, prepend=done[0]) / np.diff(t, prepend=t[0] - 1.0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(t, rss, color="tab:blue")
    top.axvline(warmup_s, color="grey", linestyle=":", label="end of warm-up")
    top.set_ylabel("server RSS (MB)")
    top.legend(loc="lower right")
    top.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=8)
    bottom.plot(t, rate, color="tab:green")
    bottom.set_ylabel("responses / s")
    bottom.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=parse_duration, default=60.0, help="60s, 10m")
    parser.add_argument("--warmup", type=parse_duration, help="default: a tenth, 5-60 s")
    parser.add_argument("--url", help="an already running server's predict URL")
    parser.add_argument("--rss-tolerance", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=Path("bench-results/soak"))
    args = parser.parse_args()
    console = Console(highlight=False)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="soak-", dir=args.out))
    warmup = args.warmup if args.warmup is not None else min(60.0, max(5.0, args.duration / 10))
    jpeg = sample_jpeg(scratch)
    server: ServerProcess | None = None
    if args.url:
        url = args.url
        memory: ProcessTreeMemory | PrometheusMemory = PrometheusMemory(
            url.split("/v1/")[0] + "/metrics"
        )
    else:
        ensure_model(console)
        port = free_port()
        url = f"http://127.0.0.1:{port}{PREDICT}"
        command = [sys.executable, "-m", "batchserve", "serve", "--repository",
                   str(MODEL_DIR.parent), "--port", str(port)]  # fmt: skip
        server = ServerProcess(command, scratch / "server.log")
        body = jpeg.read_bytes()
        server.wait_ready(
            lambda: (
                httpx.post(
                    url, content=body, headers={"content-type": "image/jpeg"}, timeout=30
                ).status_code
                == 200
            ),
            180,
        )
        memory = ProcessTreeMemory(server.pid)
    console.print(
        f"[bold]soak[/]: {args.clients} clients, {args.duration:g} s after a {warmup:g} s "
        f"warm-up, {url}; load average {os.getloadavg()[0]:.1f}"
    )
    progress = StepProgress()
    try:
        with Recorder(memory, progress) as recorder:
            (step,) = run_sweep(
                build_target(url, images=jpeg),
                [StepPlan.closed(args.clients)],
                LoadSettings(duration=args.duration, warmup=warmup, timeout=30.0),
                progress=progress,
            )
    finally:
        if server is not None:
            server.stop()
    flat = flatness(recorder.samples, warmup)
    ok = (
        step.error_total == 0
        and flat["peak_excess"] is not None
        and flat["peak_excess"] <= args.rss_tolerance
        and abs(flat["drift"] or 0) <= args.rss_tolerance
    )
    loads = [s["load_1m"] for s in recorder.samples]
    lat = step.latency_ms
    summary = (
        f"c={args.clients} {args.duration:g} s: {step.requests} requests, "
        f"{step.error_total} errors{f' {dict(step.errors)}' if step.errors else ''}, "
        f"{step.throughput:.1f} req/s, "
        f"p50 {lat.p50:.0f} ms p99 {lat.p99:.0f} ms; RSS after warm-up "
        f"{flat['start_mb']:.0f} -> {flat['end_mb']:.0f} MB (peak +{flat['peak_excess']:.1%}, "
        f"drift {flat['drift']:+.1%}); load average {min(loads):.1f}-{max(loads):.1f}"
    )
    console.print(("[green]PASS[/] " if ok else "[red]FAIL[/] ") + summary)
    doc = {
        "tool": "bench/soak.py",
        "url": url,
        "clients": args.clients,
        "duration_s": args.duration,
        "warmup_s": warmup,
        "passed": ok,
        "rss_tolerance": args.rss_tolerance,
        "flatness": flat,
        "step": step.as_dict(),
        "samples": recorder.samples,
        "summary": summary,
    }
    name = f"soak-c{args.clients}-{args.duration:g}s"
    (args.out / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    plot(recorder.samples, args.out / f"{name}.png", summary, warmup)
    console.print(f"wrote {args.out}/{name}.json and .png")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
