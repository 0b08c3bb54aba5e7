"""Requests built by tritonclient decode to the numpy they sent, checked against the model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from batchserve.codecs.v2 import RequestedOutput, decode_infer_request
from batchserve.datatypes import TensorSpec
from batchserve.errors import InvalidInput
from tests.codecs.v2.wire import SAMPLES, client_request, decode_doc

SPECS = [
    TensorSpec("x", np.dtype(np.float32), (-1, 3)),
    TensorSpec("ids", np.dtype(np.int64), (-1,)),
]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_tritonclient_request_decodes_to_the_numpy_it_sent(datatype: str, binary: bool) -> None:
    sent = SAMPLES[datatype]
    body, json_size = client_request({"x": (sent, datatype, binary)}, request_id="r1")

    request = decode_infer_request(body, json_size, None)

    got = request.inputs["x"]
    assert request.id == "r1"
    assert got.dtype == sent.dtype and got.shape == sent.shape
    assert got.tolist() == sent.tolist()


def test_mixed_inputs_keep_request_order_and_binary_offsets() -> None:
    # FP16 first makes the FP32 blob start at an odd offset (6 bytes in).
    fp16 = np.array([1.5, 2.5, -3.0], dtype=np.float16)
    fp32 = np.arange(6, dtype=np.float32).reshape(2, 3)
    text = np.array([b"a", b"bc"], dtype=object)
    body, json_size = client_request(
        {"h": (fp16, "FP16", True), "t": (text, "BYTES", False), "f": (fp32, "FP32", True)}
    )

    request = decode_infer_request(body, json_size, None)

    assert list(request.inputs) == ["h", "t", "f"]
    np.testing.assert_array_equal(request.inputs["h"], fp16)
    np.testing.assert_array_equal(request.inputs["f"], fp32)
    assert request.inputs["f"].flags.aligned
    assert request.inputs["t"].tolist() == [b"a", b"bc"]


def test_requested_outputs_and_binary_default_from_tritonclient() -> None:
    x = (np.zeros(2, dtype=np.float32), "FP32", False)
    outputs = [
        httpclient.InferRequestedOutput("probs", binary_data=False),
        httpclient.InferRequestedOutput("logits", class_count=3),
    ]
    body, json_size = client_request({"x": x}, outputs=outputs)
    request = decode_infer_request(body, json_size, None)
    assert request.outputs == (
        RequestedOutput("probs", False, 0, {"binary_data": False}),
        RequestedOutput("logits", True, 3, {"classification": 3, "binary_data": True}),
    )
    assert request.binary_data_output is False

    # No outputs named: the client asks for everything, in binary.
    request = decode_infer_request(*client_request({"x": x}), None)
    assert request.outputs is None
    assert request.binary_data_output is True


def _two_inputs(x: dict[str, Any] | None = None) -> dict[str, Any]:
    ids = {"name": "ids", "datatype": "INT64", "shape": [2], "data": [1, 2]}
    x = {"name": "x", "datatype": "FP32", "shape": [2, 3], "data": [0.0] * 6} | (x or {})
    return {"inputs": [x, ids]}


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (_two_inputs({"name": "y"}), "input 'y' is not an input of the model; it has 'x', 'ids'"),
        ({"inputs": _two_inputs()["inputs"][:1]}, "missing input 'ids'"),
        (_two_inputs({"datatype": "FP64"}), "'x': datatype FP64 does not match the model's FP32"),
        (_two_inputs({"shape": [6]}), r"'x': shape \[6\] does not match the model's \[-1, 3\]"),
        (_two_inputs({"shape": [3, 2]}), r"'x': shape \[3, 2\] does not match"),
    ],
    ids=["unknown", "missing", "datatype", "rank", "fixed dim"],
)
def test_inputs_are_checked_against_the_model(doc: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        decode_doc(doc, specs=SPECS)


def test_dynamic_dims_match_any_size_and_outputs_are_checked() -> None:
    doc = _two_inputs({"shape": [1, 3], "data": [1.0, 2.0, 3.0]})
    assert decode_doc(doc, specs=SPECS).inputs["x"].shape == (1, 3)

    doc["outputs"] = [{"name": "nope"}]
    outputs = [TensorSpec("probs", np.dtype(np.float32), (-1, 3))]
    with pytest.raises(InvalidInput, match="output 'nope' is not an output of the model"):
        decode_doc(doc, specs=SPECS, output_specs=outputs)
