"""Bodies as tritonclient.http builds and parses them, for the v2 codec's tests.

Requests are built by the library users actually call and responses are
parsed by it, so the tests fail if our bytes drift from what real clients
send and expect.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.http import InferenceServerClient, InferResult

from batchserve.codecs.v2 import InferRequest, decode_infer_request
from batchserve.errors import InvalidInput

SAMPLES: dict[str, np.ndarray] = {
    "FP32": np.array([[0.1, -2.5, 3e38], [1e-30, 0.0, 7.0]], dtype=np.float32),
    "INT64": np.array([[-(2**63), 2**63 - 1, 0]], dtype=np.int64),
    "UINT8": np.array([0, 1, 254, 255], dtype=np.uint8).reshape(2, 2),
    "BOOL": np.array([[True, False, True]]),
    "FP16": np.array([0.1, -65504.0, 6e-8], dtype=np.float16),
    "BYTES": np.array([[b"cat", "héllo ✓".encode(), b""]], dtype=object),
}


def client_request(
    tensors: dict[str, tuple[np.ndarray, str, bool]],
    outputs: list[httpclient.InferRequestedOutput] | None = None,
    request_id: str = "",
) -> tuple[bytes, int | None]:
    """A request body exactly as tritonclient.http would POST it."""
    inputs = []
    for name, (array, datatype, binary) in tensors.items():
        infer_input = httpclient.InferInput(name, list(array.shape), datatype)
        infer_input.set_data_from_numpy(array, binary_data=binary)
        inputs.append(infer_input)
    return InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, request_id=request_id
    )


def as_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def decode_doc(doc: dict[str, Any], **kwargs: Any) -> InferRequest:
    return decode_infer_request(as_json(doc), None, **kwargs)


def parse(body: bytes, header_length: int | None) -> InferResult:
    return InferResult.from_response_body(body, verbose=False, header_length=header_length)


def one_input(data: Any, datatype: str = "FP32", shape: list[int] | None = None) -> bytes:
    shape = shape if shape is not None else [len(data)]
    return as_json({"inputs": [{"name": "x", "datatype": datatype, "shape": shape, "data": data}]})


def bad_request_test(cases: list[tuple[str, bytes, int | None, str]]) -> Callable[..., None]:
    """A test that each (id, body, header length, message) case raises InvalidInput so.

    Each module assigns it to a `test_` name, so its cases run as that module's test.
    """

    @pytest.mark.parametrize(
        ("body", "header_length", "match"),
        [case[1:] for case in cases],
        ids=[case[0] for case in cases],
    )
    def test_bad_requests_raise_invalid_input(
        body: bytes, header_length: int | None, match: str
    ) -> None:
        with pytest.raises(InvalidInput, match=match):
            decode_infer_request(body, header_length, None)

    return test_bad_requests_raise_invalid_input
