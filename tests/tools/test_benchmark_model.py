"""tools/build_benchmark_model.py builds a valid MobileNet v1 1.0 that ONNX Runtime batches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "build_benchmark_model.py"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The script run as `make bench-model` runs it: a separate process, into a fresh folder."""
    out = tmp_path_factory.mktemp("models-bench")
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, timeout=120)
    return out / "mobilenet_v1"


def test_model_passes_the_onnx_checker_with_mobilenet_v1_parameter_count(built: Path) -> None:
    model = onnx.load(built / "1" / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert 4_100_000 <= params <= 4_300_000


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_runtime_runs_a_dynamic_batch_to_finite_distinct_logits(
    built: Path, batch: int
) -> None:
    session = onnxruntime.InferenceSession(
        str(built / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    declared = session.get_inputs()[0]
    assert declared.name == "input"
    assert not isinstance(declared.shape[0], int)
    x = np.random.default_rng(0).normal(size=(batch, 3, 224, 224)).astype(np.float32)
    (logits,) = session.run(["logits"], {"input": x})
    assert logits.shape == (batch, 1000)
    assert np.isfinite(logits).all()
    assert logits.std(axis=1).min() > 1e-3


def test_config_and_labels_are_written(built: Path) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from batchserve.config import load_model_config

    config = load_model_config(built / "model.yaml")
    assert config.preprocessing is not None
    assert config.preprocessing.size == (224, 224)
    labels = (built / "labels.txt").read_text().splitlines()
    assert labels[0] == "class_0"
    assert len(labels) == 1000


def test_rebuild_is_byte_identical(built: Path, tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], check=True, timeout=120)
    again = tmp_path / "mobilenet_v1" / "1" / "model.onnx"
    assert again.read_bytes() == (built / "1" / "model.onnx").read_bytes()
