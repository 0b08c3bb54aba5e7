"""The ASGI server under batchserve's app: uvicorn (h11, httptools), Hypercorn, Granian,
and `batchserve serve` itself.

Each server runs the same `create_app` (bench/peers/asgi_app.py) on the MobileNet v1
1.0/224 benchmark model and is swept at the same concurrency levels with `batchserve
bench`'s generator (bench/compare.py's `run_config`). On a shared, noisy machine one
sweep each says little, so the servers are run in alternation (A B C D, A B C D...)
for --rounds rounds and the median of each server's rounds is reported, with the
load average at each sweep.

    .venv/bin/python bench/asgi_servers.py --rounds 2 --duration 8s --out bench-results/asgi
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import httpx
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import MODEL_DIR, PEERS, PREDICT, Config, Outcome, ensure_model, run_config
from engine import sample_jpeg
from launch import ServerProcess, free_port

from batchserve.bench.memory import ProcessTreeMemory
from batchserve.bench.sweep import LoadSettings, StepPlan, auto_warmup, run_sweep
from batchserve.bench.targets import build_target
from batchserve.units import parse_concurrency, parse_duration

SERVERS = ("batchserve", "uvicorn-httptools", "uvicorn-h11", "hypercorn", "granian")


def config(server: str) -> Config:
    """`batchserve` is `batchserve serve` itself (uvicorn httptools with the bounds of
    server/connections.py); the others run the same app with the server's defaults."""

    def argv(port: int) -> list[str]:
        if server == "batchserve":
            return [sys.executable, "-m", "batchserve", "serve", "--repository",
                    str(MODEL_DIR.parent), "--port", str(port)]  # fmt: skip
        return [sys.executable, str(PEERS / "asgi_app.py"), "--server", server,
                "--port", str(port), "--repository", str(MODEL_DIR.parent)]  # fmt: skip

    return Config(server, "batchserve app", argv, path=PREDICT)


def run_live(config: Config, levels: list[int], settings: LoadSettings, scratch: Path) -> Outcome:
    """The HTTP layer alone: GET /v2/health/live, which does no work, at each level."""
    outcome = Outcome(config)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/health/live"
    template = scratch / "empty.txt"
    template.write_text("")
    server = ServerProcess(config.argv(port), scratch / f"{config.server}-live.log")
    try:
        server.wait_ready(lambda: httpx.get(url, timeout=5).status_code == 200, 120)
        outcome.load_1m = os.getloadavg()[0]
        target = build_target(url, template=template, method="GET", content_type="text/plain")
        outcome.steps = run_sweep(
            target,
            [StepPlan.closed(c) for c in levels],
            settings,
            memory=ProcessTreeMemory(server.pid),
        )
    finally:
        server.stop()
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=parse_duration, default=8.0, help="per step")
    parser.add_argument("--concurrency", type=parse_concurrency, default=[1, 8, 64])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--route",
        choices=["predict", "live"],
        default="predict",
        help="predict: MobileNet on the 640x480 JPEG; live: GET /v2/health/live, no work",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/asgi"))
    args = parser.parse_args()
    console = Console(highlight=False, width=200)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="asgi-", dir=args.out))
    ensure_model(console)
    jpeg = sample_jpeg(scratch)
    settings = LoadSettings(duration=args.duration, warmup=auto_warmup(args.duration), timeout=30.0)
    servers = args.servers.split(",")
    runs: dict[str, list[dict]] = {s: [] for s in servers}
    for round_ in range(args.rounds):
        for server in servers:
            console.print(f"[bold]round {round_ + 1}: {server}[/]")
            if args.route == "live":
                outcome = run_live(config(server), args.concurrency, settings, scratch)
            else:
                outcome = run_config(
                    config(server), jpeg, args.concurrency, settings, scratch, console
                )
            runs[server].append(
                {
                    "load_1m": outcome.load_1m,
                    "end_load_1m": os.getloadavg()[0],
                    "error": outcome.error,
                    "rss_peak_bytes": outcome.rss_peak,
                    "steps": [s.as_dict() for s in outcome.steps],
                }
            )
    summary = {}
    for server, rounds in runs.items():
        per_level = {}
        for c in args.concurrency:
            steps = [s for r in rounds for s in r["steps"] if s["concurrency"] == c]
            if not steps:
                continue
            per_level[c] = {
                "throughput_median": statistics.median(s["throughput"] for s in steps),
                "p50_ms_median": statistics.median(s["latency_ms"]["p50"] for s in steps),
                "p99_ms_median": statistics.median(s["latency_ms"]["p99"] for s in steps),
                "errors": sum(s["error_total"] for s in steps),
                "rounds": [round(s["throughput"], 1) for s in steps],
            }
        summary[server] = {
            "levels": per_level,
            "load_1m": [r["load_1m"] for r in rounds],
            "rss_peak_mb": [round((r["rss_peak_bytes"] or 0) / 1e6) for r in rounds],
        }
    for server, s in summary.items():
        cells = "  ".join(
            f"c={c}: {v['throughput_median']:6.1f} req/s p50 {v['p50_ms_median']:6.1f} "
            f"p99 {v['p99_ms_median']:7.1f} ms {v['rounds']}"
            for c, v in s["levels"].items()
        )
        console.print(f"{server:>18}  {cells}  load {s['load_1m']}  RSS {s['rss_peak_mb']} MB")
    (args.out / "asgi_servers.json").write_text(
        json.dumps({"runs": runs, "summary": summary}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
