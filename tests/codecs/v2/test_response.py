"""Responses tritonclient parses back to the numpy we sent; the classification extension."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient

from batchserve.codecs.v2 import (
    RequestedOutput,
    classify,
    decode_infer_request,
    encode_infer_response,
)
from batchserve.errors import InvalidInput
from tests.codecs.v2.wire import SAMPLES, client_request, parse


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_tritonclient_parses_our_response(datatype: str, binary: bool) -> None:
    sent = SAMPLES[datatype]
    body, header_length = encode_infer_response("m", 2, "r1", {"y": sent}, None, binary)

    assert (header_length is not None) == binary
    result = parse(body, header_length)
    assert result.get_response()["model_version"] == "2"
    assert result.get_response()["id"] == "r1"
    got = result.as_numpy("y")
    assert got.shape == sent.shape
    if datatype == "BYTES" and not binary:
        # JSON carries text; the client hands it back as str.
        assert got.tolist() == [[v.decode() for v in row] for row in sent.tolist()]
    else:
        assert got.dtype == sent.dtype
        assert got.tolist() == sent.tolist()


def test_per_output_binary_data_overrides_the_default() -> None:
    outputs = {"a": np.array([1.0, 2.0], np.float32), "b": np.array([[3, 4]], np.int64)}
    requested = [RequestedOutput("b", binary_data=False), RequestedOutput("a")]

    body, header_length = encode_infer_response("m", None, None, outputs, requested, True)

    assert header_length is not None
    header = json.loads(body[:header_length])
    assert [o["name"] for o in header["outputs"]] == ["b", "a"]
    assert header["outputs"][0]["data"] == [3, 4]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 8}
    result = parse(body, header_length)
    np.testing.assert_array_equal(result.as_numpy("a"), outputs["a"])
    np.testing.assert_array_equal(result.as_numpy("b"), outputs["b"])


def test_only_requested_outputs_are_returned_and_unknown_ones_refused() -> None:
    outputs = {"a": np.zeros(1, np.float32), "b": np.ones(1, np.float32)}
    body, header_length = encode_infer_response(
        "m", "1", None, outputs, [RequestedOutput("b")], False
    )
    assert header_length is None
    assert [o["name"] for o in json.loads(body)["outputs"]] == ["b"]

    with pytest.raises(InvalidInput, match="'c' is not an output"):
        encode_infer_response("m", "1", None, outputs, [RequestedOutput("c")], False)


def test_non_finite_json_values_become_null_and_binary_keeps_them() -> None:
    y = np.array([np.nan, np.inf, -np.inf, 1.5], dtype=np.float32)

    body, header_length = encode_infer_response("m", "1", None, {"y": y}, None, False)
    assert json.loads(body)["outputs"][0]["data"] == [None, None, None, 1.5]
    got = parse(body, header_length).as_numpy("y")
    assert np.isnan(got[:3]).all() and got[3] == 1.5

    body, header_length = encode_infer_response("m", "1", None, {"y": y}, None, True)
    np.testing.assert_array_equal(parse(body, header_length).as_numpy("y"), y)


def test_bytes_output_that_is_not_utf8_cannot_be_json() -> None:
    y = np.array([b"\xff"], dtype=object)
    with pytest.raises(InvalidInput, match=r"'y'.*binary_data"):
        encode_infer_response("m", "1", None, {"y": y}, None, False)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_classification_through_tritonclient(binary: bool) -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], dtype=np.float32)
    body, json_size = client_request(
        {"x": (scores, "FP32", True)},
        outputs=[httpclient.InferRequestedOutput("p", binary_data=binary, class_count=2)],
    )
    request = decode_infer_request(body, json_size, None)

    labels = {"p": ["cat", "dog", "bird"]}
    body, header_length = encode_infer_response(
        "m", "1", None, {"p": scores}, request.outputs, False, labels=labels
    )

    got = parse(body, header_length).as_numpy("p")
    expected = [["0.700000:1:dog", "0.200000:2:bird"], ["0.500000:0:cat", "0.300000:1:dog"]]
    assert got.shape == (2, 2)
    assert [[v.decode() if binary else v for v in row] for row in got.tolist()] == expected


def test_classify_without_labels_with_ties_and_integer_scores() -> None:
    got = classify(np.array([3, 9, 9, 1], dtype=np.int64), 3, None)
    assert got.tolist() == [b"9:1", b"9:2", b"3:0"]
    # A label list shorter than the classes leaves the label part out.
    assert classify(np.array([[0.0, 1.0]]), 5, ["a"]).tolist() == [[b"1.000000:1", b"0.000000:0:a"]]


def test_classification_of_non_numeric_output_is_refused() -> None:
    y = np.array([b"a"], dtype=object)
    with pytest.raises(InvalidInput, match=r"'y'.*numeric"):
        encode_infer_response("m", "1", None, {"y": y}, [RequestedOutput("y", None, 1)], False)
