"""A model's own decode/encode behind `/v1/.../predict` (codecs/custom_format.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from batchserve.codecs.custom_format import CustomFormatCodec, to_jsonable
from batchserve.errors import ImageTooLarge, InferenceError, InvalidInput


def test_results_are_made_json_able() -> None:
    result = {
        "scores": np.array([0.5, np.nan], np.float32),
        "ids": np.array([[1, 2]], np.int64),
        "names": np.array([b"cat", "dog"], dtype=object),
        "top": np.float64(0.25),
        "count": np.int32(3),
        "raw": b"\xff\x00",
        "nested": ({"inf": math.inf},),
    }
    assert to_jsonable(result) == {
        "scores": [0.5, None],
        "ids": [[1, 2]],
        "names": ["cat", "dog"],
        "top": 0.25,
        "count": 3,
        "raw": "/wA=",  # not UTF-8: base64
        "nested": [{"inf": None}],
    }
    with pytest.raises(InferenceError, match=r"holds a set, which JSON cannot carry"):
        to_jsonable({"a": {1, 2}})


def test_without_a_decode_the_body_is_json() -> None:
    codec = CustomFormatCodec()
    assert codec.decode(b'{"rows": [1, 2]}', "application/json") == {"rows": [1, 2]}
    with pytest.raises(InvalidInput, match="not valid JSON"):
        codec.decode(b"{", "application/json")
    with pytest.raises(InvalidInput, match="the body is empty"):
        codec.decode(b"", "")


def test_what_decode_raises_is_the_clients_error_and_encode_wraps_the_answer() -> None:
    def decode(body: bytes, content_type: str) -> str:
        if body == b"huge":
            raise ImageTooLarge("too many pixels")
        return body.decode("ascii")

    codec = CustomFormatCodec(decode, lambda output: {"echo": output})
    assert codec.decode(b"ok", "text/plain") == "ok"
    with pytest.raises(InvalidInput, match=r"could not be decoded: UnicodeDecodeError"):
        codec.decode(b"\xff", "text/plain")
    with pytest.raises(ImageTooLarge):  # batchserve's own errors keep their kind (and status)
        codec.decode(b"huge", "text/plain")
    assert codec.encode(np.arange(2), {}) == {"predictions": {"echo": [0, 1]}}
    broken = CustomFormatCodec(encode_output=lambda output: output["missing"])
    with pytest.raises(InferenceError, match=r"the model's encode failed: KeyError"):
        broken.encode({}, {})
