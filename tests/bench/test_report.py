"""The outputs of a sweep, including the awkward ones: a step with nothing but errors."""

from __future__ import annotations

import csv
import json

from PIL import Image
from rich.console import Console

from batchserve.bench.report import client_note, results_table, write_outputs
from batchserve.bench.stats import LatencySummary, StepResult


def step(concurrency: int, ok: int, errors: dict[str, int], cpu_percent: float) -> StepResult:
    latencies = [0.010 + 0.001 * i for i in range(ok)]
    return StepResult(
        mode="closed",
        concurrency=concurrency,
        rate=None,
        duration_s=2.0,
        warmup_s=0.5,
        requests=ok + sum(errors.values()),
        ok=ok,
        errors=errors,
        throughput=ok / 2.0,
        latency_ms=LatencySummary.of(latencies),
        client_cpu_s=cpu_percent / 100 * 2.0,
        client_cpu_per_request_us=50.0 if ok else None,
        client_cpu_percent=cpu_percent,
        rss_bytes=120_000_000 if ok else None,
        rss_peak_bytes=125_000_000 if ok else None,
    )


def test_a_step_with_only_errors_still_reports(tmp_path):
    steps = [step(1, 40, {}, 5.0), step(8, 0, {"status_503": 17, "timeout": 2}, 80.0)]
    json_path, csv_path, png_path = write_outputs(tmp_path, steps, {"tool": "test"}, "t")

    doc = json.loads(json_path.read_text())
    assert doc["tool"] == "test"
    failed = doc["steps"][1]
    assert failed["latency_ms"]["p50"] is None
    assert failed["errors"] == {"status_503": 17, "timeout": 2}
    assert failed["error_total"] == 19 and failed["ok"] == 0

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["errors"] == "status_503=17;timeout=2"
    assert rows[1]["p50_ms"] == "" and float(rows[0]["p50_ms"]) > 10.0

    with Image.open(png_path) as chart:
        assert chart.format == "PNG"
        chart.verify()

    console = Console(width=200, record=True)
    console.print(results_table(steps))
    text = console.export_text()
    assert "status_503 17, timeout 2" in text and "c=8" in text


def test_client_note_warns_when_the_generator_is_busy():
    calm = client_note([step(1, 40, {}, 5.0)])
    assert "50 µs" in calm and "competes" not in calm
    busy = client_note([step(1, 40, {}, 5.0), step(64, 400, {}, 85.0)])
    assert "c=64 used 85%" in busy and "competes" in busy
