"""`batchserve validate`: every model loads as `serve` would, or the command names each
broken one and exits 1 — what a CI job runs before deploying."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.live_server import DEMO_REPOSITORY, PROJECT_ROOT
from tests.repository.builders import add_version


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchserve", "--log-level", "ERROR", "validate", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
    )


def test_a_good_repository_passes_with_a_table(tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "a", 1)
    add_version(repo, "b", 1, seed=3)
    done = _validate(str(repo))
    assert done.returncode == 0, done.stderr
    assert "a" in done.stdout and "READY" in done.stdout
    assert "shared: 2 worker(s) x 1 thread(s)" in done.stdout


def test_the_bundled_demo_models_pass_as_json():
    done = _validate(str(DEMO_REPOSITORY), "--json", "--profile-budget", "1")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    names = {row["model"] for row in report["models"]}
    assert {"shapes", "docgen"} <= names
    assert all(row["state"] == "READY" for row in report["models"])


def test_the_tensorflow_models_pass():
    """The seed's MobileNet as SavedModel, .keras and .tflite (`make tf-models`), each
    profiled and warmed up as `serve` would (TensorFlow and LiteRT in one process)."""
    done = _validate(str(PROJECT_ROOT / "models-tf"), "--json", "--profile-budget", "1")
    assert done.returncode == 0, done.stderr
    rows = {row["model"]: row for row in json.loads(done.stdout)["models"]}
    assert set(rows) == {"mobilenet_savedmodel", "mobilenet_keras", "mobilenet_tflite"}
    assert all(row["state"] == "READY" for row in rows.values())
    assert rows["mobilenet_tflite"]["scheduling"].startswith(("pool", "batch"))


def test_each_broken_model_is_named_with_its_reason(tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "good", 1)
    add_version(repo, "typo", 1, model_yaml="schedular: {kind: shared}\n")
    add_version(repo, "unknown", 1, model_yaml="backend: caffe2\n")
    missing = repo / "missing"
    (missing / "1").mkdir(parents=True)
    (missing / "model.yaml").write_text("artifact: model.onnx\n")
    corrupt = add_version(repo, "corrupt", 1)
    Path(corrupt).write_bytes(b"not an onnx model")

    done = _validate(str(repo), "--json")
    assert done.returncode == 1
    rows = {(r["model"], r["version"]): r for r in json.loads(done.stdout)["models"]}
    assert rows[("good", 1)]["state"] == "READY"
    broken = [line for line in done.stderr.splitlines() if line.startswith("broken: ")]
    assert len(broken) == 4, done.stderr
    assert any("typo" in line and "schedular" in line for line in broken)
    assert any("unknown" in line and "caffe2" in line and "installed" in line for line in broken)
    assert any("missing v1" in line and "does not exist" in line for line in broken)
    assert any("corrupt v1" in line for line in broken)


def test_no_repository_is_a_usage_error():
    done = _validate()
    assert done.returncode == 2
    assert "which repository" in done.stderr
