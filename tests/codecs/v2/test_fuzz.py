"""Fuzz target: the v2 request parser. Whatever the body and the header length, it
returns tensors of the declared shapes and datatypes or raises InvalidInput."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batchserve.codecs.v2 import decode_infer_request
from batchserve.datatypes import TensorSpec
from batchserve.errors import InvalidInput

pytestmark = pytest.mark.fuzz

DATATYPES = ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "UINT64", "FP16", "FP32",
             "FP64", "BYTES", "fp32", "BF16", "", "X"]  # fmt: skip
SPECS = (
    TensorSpec("x", np.dtype(np.float32), (-1, 3)),
    TensorSpec("ids", np.dtype(np.int64), (-1,)),
    TensorSpec("text", np.dtype(np.object_), (-1,)),
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(st.characters(codec=None), max_size=5)
)
data_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=24)
shapes = st.lists(st.integers(-2, 5) | st.just(2**40) | st.booleans(), max_size=4)


@st.composite
def tensor_headers(draw: st.DrawFn) -> dict:
    header: dict = {
        "name": draw(st.sampled_from(["x", "ids", "text", "", "other"]) | st.integers()),
        "datatype": draw(st.sampled_from(DATATYPES)),
        "shape": draw(shapes),
    }
    if draw(st.booleans()):
        header["data"] = draw(data_values)
    if draw(st.booleans()):
        size = draw(st.integers(-1, 64) | st.booleans() | st.none())
        header["parameters"] = {"binary_data_size": size}
    return header


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, int | None]:
    doc: dict = {"inputs": draw(st.lists(tensor_headers(), max_size=3))}
    if draw(st.booleans()):
        doc["id"] = draw(st.text(st.characters(codec=None), max_size=4) | st.integers())
    if draw(st.booleans()):
        doc["outputs"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["y", "x", ""])},
                    optional={
                        "parameters": st.dictionaries(
                            st.sampled_from(["binary_data", "classification"]), scalars
                        )
                    },
                ),
                max_size=2,
            )
        )
    if draw(st.booleans()):
        doc["parameters"] = draw(
            st.dictionaries(st.sampled_from(["binary_data_output", "priority"]), scalars)
        )
    header = json.dumps(doc).encode()
    if not draw(st.booleans()):
        return header, None
    blob = draw(st.binary(max_size=64))
    if draw(st.booleans()):  # a well-formed BYTES element or two
        elements = draw(st.lists(st.binary(max_size=8), max_size=3))
        blob = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    length = draw(st.sampled_from([len(header), 0, -1, len(header) + len(blob) + 1]))
    return header + blob, length


def _check(body: bytes, header_length: int | None, specs: tuple | None) -> None:
    try:
        request = decode_infer_request(body, header_length, specs, output_specs=None)
    except InvalidInput:
        return
    # What comes back is echoed in responses and logs: it must encode as UTF-8 again.
    json.dumps([request.id, request.parameters], ensure_ascii=False).encode("utf-8")
    for name, array in request.inputs.items():
        assert isinstance(array, np.ndarray), name
        if specs is not None:
            spec = next(s for s in specs if s.name == name)
            assert spec.accepts(array.shape)
            assert array.dtype == spec.dtype


@given(requests(), st.booleans())
@example((b'{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["\\ud800"]}]}', None),
         False)  # fmt: skip
@example((b'{"id":"\\ud800","inputs":[{"name":"ids","datatype":"INT64","shape":[1],"data":[1]}]}',
          None), False)  # fmt: skip
@example((b"[" * 50_000 + b"]" * 50_000, None), False)
def test_any_request_is_tensors_or_invalid_input(request: tuple, with_specs: bool) -> None:
    body, header_length = request
    _check(body, header_length, SPECS if with_specs else None)


@given(st.binary(max_size=300), st.none() | st.integers(-5, 400))
def test_any_bytes_are_tensors_or_invalid_input(body: bytes, header_length: int | None) -> None:
    _check(body, header_length, None)
