"""JSON tensor data: nested lists to numpy exactly, and every lossy or ill-typed value refused."""

from __future__ import annotations

import numpy as np

from batchserve.codecs.v2 import decode_infer_request
from tests.codecs.v2.wire import as_json, bad_request_test, one_input


def test_json_data_may_be_nested_and_integral_floats_fit_int_types() -> None:
    request = decode_infer_request(one_input([[1.0, 2], [3, 4]], "INT32", [4]), None, None)
    assert request.inputs["x"].dtype == np.int32
    assert request.inputs["x"].tolist() == [1, 2, 3, 4]


def test_uint64_beyond_float_precision_is_exact() -> None:
    big = 2**64 - 1
    request = decode_infer_request(one_input([1, big], "UINT64"), None, None)
    assert request.inputs["x"].tolist() == [1, big]


BAD_REQUESTS: list[tuple[str, bytes, int | None, str]] = [
    ("count", one_input([1.0, 2.0, 3.0], shape=[2, 2]), None, "'x': shape .* needs 4 .* has 3"),
    ("ragged", one_input([[1.0, 2.0], [3.0]], shape=[3]), None, "'x'.*ragged"),
    ("ragged bytes", one_input([["a", "b"], ["c"]], "BYTES", [3]), None, "'x'.*different lengths"),
    ("string for fp32", one_input(["1.5"]), None, "'x': FP32 data must be numbers, got '1.5'"),
    ("null for fp32", one_input([1.0, None]), None, "'x': FP32 .* got None"),
    ("bool for fp32", one_input([True]), None, "'x': FP32 .* got True"),
    ("fp16 overflow", one_input([1e6], "FP16"), None, "'x': value 1000000.0 is out of range"),
    ("uint8 too big", one_input([1, 256], "UINT8"), None, "'x': value 256 is out of range"),
    ("uint8 negative", one_input([-1], "UINT8"), None, "'x': value -1 is out of range"),
    ("uint8 float", one_input([255.0, 300.0], "UINT8"), None, "'x': value 300.0 is out of range"),
    (
        "int fraction",
        one_input([1, 1.5], "INT32"),
        None,
        "'x': INT32 data must be integers, got 1.5",
    ),
    ("int nan", one_input([float("nan")], "INT32"), None, "'x': INT32 .* NaN"),
    ("int64 huge", one_input([2**63], "INT64"), None, "'x': value .* out of range for INT64"),
    ("int too huge", one_input([2**70], "INT64"), None, "'x': .*out of range"),
    ("number for bool", one_input([1, 0], "BOOL"), None, "'x': BOOL data must be true/false"),
    ("number for bytes", one_input([1], "BYTES"), None, "'x': BYTES data must be strings"),
    (
        "data not list",
        as_json({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": 1.0}]}),
        None,
        "'x': 'data' must be a list",
    ),
]


test_bad_requests_raise_invalid_input = bad_request_test(BAD_REQUESTS)
