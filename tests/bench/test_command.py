"""`batchserve bench` end to end: a real subprocess against a real server on loopback."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.bench.conftest import SLOW_SIZE
from tests.live_server import DEMO_REPOSITORY, SAMPLES, LiveServer

LATENCY_KEYS = ("p50", "p90", "p95", "p99", "max")


@pytest.fixture(scope="module")
def demo_server() -> Iterator[LiveServer]:
    with LiveServer([DEMO_REPOSITORY], grpc=True) as server:
        yield server


def bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchserve", "bench", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_a_grpc_target_sweeps_with_the_same_statistics(demo_server, tmp_path):
    out = tmp_path / "out"
    run = bench(
        f"grpc://{demo_server.grpc_address}/shapes",
        "--concurrency", "1,4",
        "--duration", "1.5s",
        "--warmup", "0.5s",
        "--metrics-url", f"{demo_server.url}/metrics",
        "--out", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "raw contents 'input'" in run.stdout
    doc = json.loads((out / "bench.json").read_text())
    assert doc["target"]["url"] == f"grpc://{demo_server.grpc_address}/shapes"
    assert doc["target"]["method"] == "ModelInfer"
    for step in doc["steps"]:
        assert step["errors"] == {} and step["requests"] == step["ok"] > 5
        assert step["rss_peak_bytes"] > 20_000_000
    grpc_calls = httpx.get(f"{demo_server.url}/metrics", timeout=10).text
    assert (
        'batchserve_grpc_requests_total{code="OK",method="/inference.GRPCInferenceService/ModelInfer",model="shapes"'
        in grpc_calls
    )


def test_a_short_sweep_writes_json_csv_and_chart(demo_server, tmp_path):
    out = tmp_path / "out"
    run = bench(
        f"{demo_server.url}/v1/models/shapes/predict",
        "--concurrency", "1,4",
        "--duration", "2s",
        "--warmup", "0.5s",
        "--out", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr

    doc = json.loads((out / "bench.json").read_text())
    assert doc["settings"]["concurrency"] == [1, 4]
    assert doc["settings"]["duration_s"] == 2.0
    assert doc["target"]["requests_in_rotation"] == len(list(SAMPLES.glob("*.jpg")))
    assert "process_resident_memory_bytes" in doc["memory_source"]
    steps = doc["steps"]
    assert [s["label"] for s in steps] == ["c=1", "c=4"]
    for step in steps:
        assert step["mode"] == "closed"
        assert step["errors"] == {} and step["error_total"] == 0
        assert step["requests"] == step["ok"] > 5
        assert step["duration_s"] == pytest.approx(2.0, abs=0.1)
        assert step["throughput"] == pytest.approx(step["ok"] / step["duration_s"])
        latency = [step["latency_ms"][k] for k in LATENCY_KEYS]
        assert latency == sorted(latency) and latency[0] > 0
        assert step["rss_peak_bytes"] > 20_000_000  # the server's own, from /metrics
        assert step["client_cpu_per_request_us"] > 0

    with (out / "bench.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == ["c=1", "c=4"]
    assert [float(r["throughput"]) for r in rows] == pytest.approx(
        [s["throughput"] for s in steps], abs=1e-3
    )
    assert [int(r["requests"]) for r in rows] == [s["requests"] for s in steps]

    with Image.open(out / "bench.png") as chart:
        assert chart.format == "PNG"
        assert chart.size[0] >= 600 and chart.size[1] >= 400
        chart.verify()

    assert "client CPU per request" in run.stdout
    assert "p99 ms" in run.stdout


def test_v2_route_gets_the_preprocessed_tensor(demo_server, tmp_path):
    out = tmp_path / "v2"
    run = bench(
        f"{demo_server.url}/v2/models/shapes/infer",
        "--concurrency", "2",
        "--duration", "1s",
        "--warmup", "0.3s",
        "--out", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    (step,) = json.loads((out / "bench.json").read_text())["steps"]
    assert step["errors"] == {} and step["ok"] > 0


def test_503s_are_counted_in_the_report(slow_server, tmp_path):
    body = tmp_path / "infer.json"
    x = {"name": "x", "datatype": "FP32", "shape": [1, SLOW_SIZE], "data": [1.0] * SLOW_SIZE}
    body.write_text(json.dumps({"inputs": [x]}))
    out = tmp_path / "full"
    run = bench(
        f"{slow_server.url}/v2/models/slow/infer",
        "--body-template", str(body),
        "--concurrency", "12",
        "--duration", "1s",
        "--warmup", "0.3s",
        "--out", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    (step,) = json.loads((out / "bench.json").read_text())["steps"]
    assert step["errors"]["status_503"] > 0
    assert step["ok"] > 0
    assert step["requests"] == step["ok"] + step["error_total"]
    assert "queue is full" in step["first_errors"]["status_503"]
    assert "status_503" in run.stdout


def test_a_remote_target_is_refused_before_any_request():
    run = bench("http://192.0.2.1:8000/v1/models/shapes/predict", "--duration", "1s")
    assert run.returncode == 2
    assert "--allow-remote" in run.stderr


def test_nothing_listening_fails_fast(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    image = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(image)
    run = bench(f"http://127.0.0.1:{port}/predict", "--images", str(image), timeout=20)
    assert run.returncode == 1
    assert "nothing answers" in run.stderr
    assert not (tmp_path / "bench.json").exists()
