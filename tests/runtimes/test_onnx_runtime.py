from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from batchserve.errors import InvalidInput, ModelLoadError
from batchserve.runtimes import RuntimeOptions, load_instance
from tests import onnx_builders


def _load(path: Path, **options: object):
    return load_instance("onnx", path, RuntimeOptions(intra_op_threads=1, **options))


@pytest.fixture
def linear_path(tmp_path: Path) -> Path:
    return onnx_builders.linear_model(tmp_path / "model.onnx")


def test_describe_reports_the_dynamic_batch_as_minus_one(linear_path):
    instance = _load(linear_path)
    assert instance.describe() == {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}],
    }
    assert instance.concurrency_safe is True


@pytest.mark.parametrize("rows", [1, 4])
def test_run_computes_the_model_for_any_batch_size(linear_path, rows):
    x = np.random.default_rng(rows).standard_normal((rows, 4)).astype(np.float32)
    out = _load(linear_path).run({"x": x})
    assert out["y"].shape == (rows, 3)
    np.testing.assert_allclose(out["y"], onnx_builders.linear_reference(x), rtol=1e-5)


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="needs a CPU-only build"
)
def test_cuda_requested_without_cuda_falls_back_to_cpu_with_a_warning(linear_path, caplog):
    with caplog.at_level(logging.WARNING, logger="batchserve.runtimes.onnx"):
        instance = _load(linear_path, device="cuda")
    assert instance.providers == ("CPUExecutionProvider",)
    assert "CUDAExecutionProvider" in caplog.text and "not available" in caplog.text
    assert instance.run({"x": np.zeros((2, 4), np.float32)})["y"].shape == (2, 3)


def test_a_wrong_input_shape_is_invalid_input(linear_path):
    with pytest.raises(InvalidInput):
        _load(linear_path).run({"x": np.zeros((2, 5), np.float32)})


def test_a_corrupt_file_is_a_load_error(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07garbage that is not a protobuf model")
    with pytest.raises(ModelLoadError, match=r"model\.onnx"):
        _load(tmp_path / "model.onnx")
