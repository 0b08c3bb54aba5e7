from __future__ import annotations

from pathlib import Path

import pytest

from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.runtimes.base import ModelInstance
from tests import onnx_builders


def _load(path: Path) -> ModelInstance:
    return load_instance("onnx", path, RuntimeOptions(intra_op_threads=1))


@pytest.fixture
def linear(tmp_path: Path) -> ModelInstance:
    return _load(onnx_builders.linear_model(tmp_path / "linear.onnx"))


@pytest.fixture
def seqsum(tmp_path: Path) -> ModelInstance:
    return _load(onnx_builders.sequence_sum_model(tmp_path / "seqsum.onnx"))


@pytest.fixture
def lookup(tmp_path: Path) -> ModelInstance:
    return _load(onnx_builders.lookup_model(tmp_path / "lookup.onnx"))
