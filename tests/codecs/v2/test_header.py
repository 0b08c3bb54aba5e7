"""The request header: envelope, inputs, outputs and parameters refused with a clear message."""

from __future__ import annotations

from typing import Any

from tests.codecs.v2.wire import as_json, bad_request_test


def _inp(**fields: Any) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]} | fields


def _req(*inputs: dict[str, Any]) -> bytes:
    return as_json({"inputs": list(inputs)})


BAD_REQUESTS: list[tuple[str, bytes, int | None, str]] = [
    ("invalid json", b"{not json", None, "not valid JSON"),
    ("not an object", b"[1]", None, "JSON object"),
    ("no inputs", b"{}", None, "'inputs'"),
    ("no name", _req({"datatype": "FP32", "shape": [1], "data": [1]}), None, r"inputs\[0\]"),
    ("no datatype", _req(_inp(datatype=None)), None, "'x' needs a 'datatype'"),
    ("unknown datatype", _req(_inp(datatype="FP8")), None, "'x': unknown datatype"),
    ("bad shape", _req(_inp(shape=[-2])), None, "'x' needs a 'shape'"),
    ("no data", _req({"name": "x", "datatype": "FP32", "shape": [1]}), None, "'x' has no 'data'"),
    ("duplicate", _req(_inp(), _inp()), None, "'x' appears more than once"),
    ("shared memory", _req(_inp(parameters={"shared_memory_region": "r"})), None, "'x': shared"),
    (
        "data and binary",
        _req(_inp(parameters={"binary_data_size": 8})),
        None,
        "'x' has both 'data' and 'binary_data_size'",
    ),
    ("header length past body", b"{}", 3, "Inference-Header-Content-Length is 3"),
]


test_bad_requests_raise_invalid_input = bad_request_test(BAD_REQUESTS)
