"""`batchserve predict`: offline static batching over a folder, as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.live_server import SAMPLES


def test_predicts_a_folder_in_batches_and_skips_unreadable_files(tmp_path):
    images = tmp_path / "images"
    (images / "nested").mkdir(parents=True)
    labelled = sorted(p for p in SAMPLES.glob("*.jpg") if not p.stem.startswith("bench"))
    for i in range(3):  # more images than one batch, so several batches run
        for p in labelled:
            shutil.copy(p, (images / "nested" if i else images) / f"{i}-{p.name}")
    (images / "broken.jpg").write_bytes(b"not an image")
    (images / "empty.png").write_bytes(b"")
    out = tmp_path / "results.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "batchserve", "predict", "--model", "shapes", str(images),
         "--batch-size", "4", "--top-k", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 * len(labelled)
    for row in rows:
        expected = row["file"].rsplit("/", 1)[1].split("-", 1)[1].removesuffix(".jpg")
        assert row["top_k"][0]["label"] == expected.replace("_", " ")
        assert len(row["top_k"]) == 2
    assert "skipped" in run.stderr and "broken.jpg" in run.stderr and "empty.png" in run.stderr
    assert f"{3 * len(labelled)} images" in run.stderr and "2 skipped" in run.stderr


def test_an_unknown_model_is_a_clear_error(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "batchserve", "predict", "--model", "nope", str(SAMPLES)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert "nope" in run.stderr and "not found" in run.stderr
