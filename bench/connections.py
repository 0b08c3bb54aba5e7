"""How many idle and slow (slowloris) connections the server survives while a normal
client still gets its answer in under a second.

    .venv/bin/python bench/connections.py --levels 500,1000,2000,4000

For each level N it opens N sockets that never send and N that send a header byte a
second, all to 127.0.0.1, then times --probes ordinary predict requests (one at a
time, a new connection each) while the attack goes on, and closes every socket
before the next level. Without --url it starts `batchserve serve` on the demo model
with its default bounds (--max-connections 1024) and stops it by PID at the end.
Writes connections.json to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))

from launch import ServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
IMAGE = (ROOT / "samples" / "red_circle.jpg").read_bytes()


def attack(port: int, count: int) -> tuple[list[socket.socket], list[socket.socket]]:
    idle, slow = [], []
    for i in range(2 * count):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            continue
        s.setblocking(False)
        (idle if i % 2 else slow).append(s)
    for s in slow:
        with contextlib.suppress(OSError):
            s.send(b"GET /v2/health/live HTTP/1.1\r\n")
    return idle, slow


def trickle(slow: list[socket.socket], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for s in slow:
            with contextlib.suppress(OSError):
                s.send(b"X")


def probe(url: str, count: int) -> dict[str, object]:
    latencies, failures = [], []
    for _ in range(count):
        started = time.monotonic()
        try:
            r = httpx.post(url, content=IMAGE, headers={"content-type": "image/jpeg"}, timeout=10)
            if r.status_code == 200:
                latencies.append(time.monotonic() - started)
            else:
                failures.append(f"{r.status_code} {r.text[:80]}")
        except httpx.HTTPError as exc:
            failures.append(type(exc).__name__)
        time.sleep(0.2)
    return {
        "ok": len(latencies),
        "failures": failures,
        "median_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="500,1000,2000,4000")
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--url", help="base URL of a running server (default: start one)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/connections"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    server = None
    if args.url:
        base = args.url.rstrip("/")
    else:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = Path(tempfile.mkdtemp(prefix="connections-", dir=args.out)) / "server.log"
        server = ServerProcess(
            [sys.executable, "-m", "batchserve", "serve", "--repository", str(ROOT / "models"),
             "--port", str(port)], log)  # fmt: skip
        server.wait_ready(
            lambda: httpx.get(f"{base}/v2/health/ready", timeout=5).status_code == 200, 120
        )
    port = int(base.rsplit(":", 1)[1])
    url = f"{base}/v1/models/shapes/predict"
    results = []
    try:
        baseline = probe(url, args.probes)
        print(f"no attack: {baseline}", flush=True)
        for level in [int(x) for x in args.levels.split(",")]:
            idle, slow = attack(port, level)
            stop = threading.Event()
            thread = threading.Thread(target=trickle, args=(slow, stop), daemon=True)
            thread.start()
            time.sleep(1.0)
            outcome = probe(url, args.probes)
            stop.set()
            thread.join(5)
            for s in idle + slow:
                s.close()
            row = {"idle": len(idle), "slow": len(slow), **outcome,
                   "load_1m": os.getloadavg()[0]}  # fmt: skip
            print(row, flush=True)
            results.append(row)
            time.sleep(2.0)
    finally:
        if server is not None:
            server.stop()
    (args.out / "connections.json").write_text(
        json.dumps({"url": url, "baseline": baseline, "levels": results}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
