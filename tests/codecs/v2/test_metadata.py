"""The metadata bodies, as the v2 spec describes them."""

from __future__ import annotations

import numpy as np

from batchserve.codecs.v2 import model_metadata, server_metadata
from batchserve.datatypes import TensorSpec

SPECS = [
    TensorSpec("x", np.dtype(np.float32), (-1, 3)),
    TensorSpec("ids", np.dtype(np.int64), (-1,)),
]


def test_metadata_builders_follow_the_spec() -> None:
    meta = model_metadata("m", [1, 2], "onnxruntime_onnx", SPECS[:1], SPECS[1:])
    assert meta == {
        "name": "m",
        "versions": ["1", "2"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "ids", "datatype": "INT64", "shape": [-1]}],
    }
    assert server_metadata("batchserve", "0.1.0", ["binary_tensor_data"]) == {
        "name": "batchserve",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }
