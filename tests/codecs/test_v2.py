"""The v2 codec against the official Triton client, plus its validation and top-k.

Requests are built by tritonclient.http (the library users actually call) and
responses are parsed by it, so these tests fail if our bytes drift from what
real clients send and expect.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.http import InferenceServerClient, InferResult

from batchserve.codecs.labels import load_labels, softmax, top_k
from batchserve.codecs.v2 import InferRequest, RequestedOutput, decode_infer_request
from batchserve.codecs.v2_response import (
    classify,
    encode_infer_response,
    model_metadata,
    server_metadata,
)
from batchserve.datatypes import TensorSpec
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


# --- requests built by tritonclient --------------------------------------------------


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


def test_json_data_may_be_nested_and_integral_floats_fit_int_types() -> None:
    request = decode_infer_request(one_input([[1.0, 2], [3, 4]], "INT32", [4]), None, None)
    assert request.inputs["x"].dtype == np.int32
    assert request.inputs["x"].tolist() == [1, 2, 3, 4]


def test_uint64_beyond_float_precision_is_exact() -> None:
    big = 2**64 - 1
    request = decode_infer_request(one_input([1, big], "UINT64"), None, None)
    assert request.inputs["x"].tolist() == [1, big]


# --- responses parsed by tritonclient ------------------------------------------------


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


# --- classification extension --------------------------------------------------------


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


# --- labels: top-k, softmax, label files ---------------------------------------------


def test_top_k_matches_a_full_stable_sort_even_with_ties() -> None:
    scores = np.random.default_rng(0).integers(0, 5, size=(50, 40)).astype(np.float32)
    indices, values = top_k(scores, 7)

    reference = np.argsort(-scores, axis=-1, kind="stable")[:, :7]
    np.testing.assert_array_equal(indices, reference)
    np.testing.assert_array_equal(values, np.take_along_axis(scores, reference, -1))


def test_top_k_edge_cases() -> None:
    # Boundary ties go to the lowest index; k beyond n is clamped.
    assert top_k(np.array([1, 5, 5, 5], dtype=np.uint8), 2)[0].tolist() == [1, 2]
    assert top_k(np.array([2.0, 1.0]), 10)[0].tolist() == [0, 1]
    # NaN ranks below every number.
    indices, values = top_k(np.array([np.nan, -1.0, 0.5]), 3)
    assert indices.tolist() == [2, 1, 0] and np.isnan(values[2])
    with pytest.raises(ValueError):
        top_k(np.array([1.0]), 0)


def test_softmax_is_stable_and_keeps_float32() -> None:
    probs = softmax(np.array([[1000.0, 1000.0], [0.0, -np.inf]], dtype=np.float32))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, [[0.5, 0.5], [1.0, 0.0]])


def test_load_labels_keeps_line_indices(tmp_path: Any) -> None:
    path = tmp_path / "labels.txt"
    path.write_bytes("\ufeffcat\r\n\ndog \n".encode())
    assert load_labels(path) == ["cat", "", "dog"]


# --- validation ----------------------------------------------------------------------

SPECS = [
    TensorSpec("x", np.dtype(np.float32), (-1, 3)),
    TensorSpec("ids", np.dtype(np.int64), (-1,)),
]


def _inp(**fields: Any) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]} | fields


def _req(*inputs: dict[str, Any]) -> bytes:
    return as_json({"inputs": list(inputs)})


def _binary(tensor: dict[str, Any], blob: bytes) -> tuple[bytes, int]:
    header = as_json({"inputs": [tensor]})
    return header + blob, len(header)


BAD_REQUESTS: list[tuple[str, bytes, int | None, str]] = [
    ("invalid json", b"{not json", None, "not valid JSON"),
    ("not an object", b"[1]", None, "JSON object"),
    ("no inputs", b"{}", None, "'inputs'"),
    ("no name", _req({"datatype": "FP32", "shape": [1], "data": [1]}), None, r"inputs\[0\]"),
    ("no datatype", _req(_inp(datatype=None)), None, "'x' needs a 'datatype'"),
    ("unknown datatype", _req(_inp(datatype="FP8")), None, "'x': unknown datatype"),
    ("bad shape", _req(_inp(shape=[-2])), None, "'x' needs a 'shape'"),
    ("no data", _req({"name": "x", "datatype": "FP32", "shape": [1]}), None, "'x' has no 'data'"),
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
    ("data not list", _req(_inp(data=1.0, shape=[1])), None, "'x': 'data' must be a list"),
    ("duplicate", _req(_inp(), _inp()), None, "'x' appears more than once"),
    ("shared memory", _req(_inp(parameters={"shared_memory_region": "r"})), None, "'x': shared"),
    (
        "data and binary",
        _req(_inp(parameters={"binary_data_size": 8})),
        None,
        "'x' has both 'data' and 'binary_data_size'",
    ),
    (
        "binary without header length",
        _req(
            {"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}
        ),
        None,
        "'x' has 'binary_data_size' but .* no binary part",
    ),
    ("header length past body", b"{}", 3, "Inference-Header-Content-Length is 3"),
]

_BIN = {"name": "x", "datatype": "FP32", "shape": [3]}
for _case, _tensor, _blob, _match in [
    ("binary size vs shape", _BIN | {"parameters": {"binary_data_size": 8}}, b"\0" * 8, "needs 12"),
    ("binary past body", _BIN | {"parameters": {"binary_data_size": 12}}, b"\0" * 8, "runs past"),
    ("binary unused bytes", _BIN | {"parameters": {"binary_data_size": 12}}, b"\0" * 13, "add up"),
    (
        "bool byte not 0/1",
        {"name": "x", "datatype": "BOOL", "shape": [2], "parameters": {"binary_data_size": 2}},
        b"\x01\x02",
        "'x': BOOL bytes must be 0 or 1",
    ),
    (
        "bytes prefix cut",
        {"name": "x", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 7}},
        b"\x01\0\0\0a\0\0",
        "'x': BYTES data ends inside a length prefix",
    ),
    (
        "bytes element overruns",
        {"name": "x", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 5}},
        b"\x09\0\0\0a",
        "'x': BYTES element 0 claims 9 bytes",
    ),
    (
        "bytes too few",
        {"name": "x", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 5}},
        b"\x01\0\0\0a",
        "'x': shape \\[2\\] needs 2 elements, BYTES data has 1",
    ),
]:
    BAD_REQUESTS.append((_case, *_binary(_tensor, _blob), _match))


@pytest.mark.parametrize(
    ("body", "header_length", "match"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_raise_invalid_input(
    body: bytes, header_length: int | None, match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        decode_infer_request(body, header_length, None)


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


# --- metadata ------------------------------------------------------------------------


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
