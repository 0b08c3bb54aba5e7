"""The gRPC codec: our .proto against the protocol tritonclient speaks, and protobuf <-> numpy.

Wire compatibility is checked against the descriptors of tritonclient's own generated
code: every field of every message of ours must exist there with the same number,
type and cardinality. Importing both also proves they live in one process.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor
from tritonclient.grpc import service_pb2

from batchserve.codecs.grpc import inference_pb2 as pb
from batchserve.codecs.grpc.tensors import (
    decode_infer_request,
    encode_infer_response,
    parameter_values,
)
from batchserve.codecs.v2 import RequestedOutput
from batchserve.datatypes import TensorSpec
from batchserve.errors import InvalidInput


def _theirs(ours: Descriptor) -> Descriptor:
    name = "inference." + ours.full_name.removeprefix("batchserve.inference.")
    return descriptor_pool.Default().FindMessageTypeByName(name)


def _messages(descriptor: Descriptor):
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _messages(nested)


def test_every_field_matches_the_protocol_number_for_number():
    assert service_pb2.DESCRIPTOR.package == "inference"
    checked = 0
    for top in pb.DESCRIPTOR.message_types_by_name.values():
        for ours in _messages(top):
            theirs = _theirs(ours)
            for field in ours.fields:
                other = theirs.fields_by_name.get(field.name)
                assert other is not None, f"{ours.full_name}.{field.name} is not in the protocol"
                where = f"{ours.full_name}.{field.name}"
                assert other.number == field.number, where
                assert other.type == field.type, where
                assert other.is_repeated == field.is_repeated, where
                if field.message_type is not None:
                    assert other.message_type.name == field.message_type.name, where
                if field.enum_type is not None:
                    assert (
                        other.enum_type.values_by_name.keys()
                        >= field.enum_type.values_by_name.keys()
                    )
                    for value in field.enum_type.values:
                        assert other.enum_type.values_by_name[value.name].number == value.number
                checked += 1
    assert checked > 80


def _request_from_tritonclient(tensors: dict[str, np.ndarray], datatypes: dict[str, str]):
    """A request built by tritonclient itself, read back as our message."""
    request = service_pb2.ModelInferRequest(model_name="m", id="r1")
    for name, array in tensors.items():
        inp = grpcclient.InferInput(name, list(array.shape), datatypes[name])
        inp.set_data_from_numpy(array)
        request.inputs.append(inp._get_tensor())
        request.raw_input_contents.append(inp._get_content())
    return pb.ModelInferRequest.FromString(request.SerializeToString())


def test_raw_inputs_of_every_datatype_round_trip():
    tensors = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 3,
        "f16": np.array([1.5, -2.25], np.float16),
        "i8": np.array([-128, 127], np.int8),
        "u64": np.array([2**64 - 1], np.uint64),
        "b": np.array([True, False, True]),
        "s": np.array([b"a", b"", "ü".encode()], dtype=object),
    }
    types = {"f32": "FP32", "f16": "FP16", "i8": "INT8", "u64": "UINT64", "b": "BOOL", "s": "BYTES"}
    decoded = decode_infer_request(_request_from_tritonclient(tensors, types))
    assert decoded.id == "r1"
    for name, array in tensors.items():
        np.testing.assert_array_equal(decoded.inputs[name], array)
        assert decoded.inputs[name].dtype == array.dtype


def test_typed_contents_equal_raw_and_are_range_checked():
    array = np.array([[1, -2, 3]], np.int16)
    typed = pb.ModelInferRequest()
    typed.inputs.add(name="x", datatype="INT16", shape=[1, 3]).contents.int_contents.extend(
        array.ravel().tolist()
    )
    raw = pb.ModelInferRequest(raw_input_contents=[array.astype("<i2").tobytes()])
    raw.inputs.add(name="x", datatype="INT16", shape=[1, 3])
    for message in (typed, raw):
        got = decode_infer_request(message).inputs["x"]
        assert got.dtype == np.int16
        np.testing.assert_array_equal(got, array)
    typed.inputs[0].contents.int_contents[0] = 70000
    with pytest.raises(InvalidInput, match="70000 is out of range for INT16"):
        decode_infer_request(typed)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda m: m.inputs.add(name="x", datatype="FP16", shape=[1]), "FP16 has no typed"),
        (lambda m: m.inputs.add(name="x", datatype="FP64", shape=[-1]), "negative dimension"),
        (lambda m: m.inputs.add(name="x", datatype="F32", shape=[1]), "unknown datatype"),
        (lambda m: m.inputs.add(name="", datatype="FP32", shape=[1]), "needs a 'name'"),
        (lambda m: None, "at least one tensor"),
    ],
)
def test_bad_inputs_say_what_is_wrong(build, words):
    message = pb.ModelInferRequest()
    build(message)
    with pytest.raises(InvalidInput, match=words):
        decode_infer_request(message)


def test_checks_against_the_model_before_decoding():
    specs = (TensorSpec("x", np.dtype(np.float32), (-1, 4)),)
    outputs = (TensorSpec("y", np.dtype(np.float32), (-1, 3)),)
    message = pb.ModelInferRequest(raw_input_contents=[b"not even the right size"])
    message.inputs.add(name="x", datatype="FP32", shape=[2, 5])
    with pytest.raises(InvalidInput, match=r"shape \[2, 5\] does not match the model's \[-1, 4\]"):
        decode_infer_request(message, specs, output_specs=outputs)
    message.inputs[0].shape[:] = [2, 4]
    message.outputs.add(name="z")
    with pytest.raises(InvalidInput, match="'z' is not an output of the model"):
        decode_infer_request(message, specs, output_specs=outputs)
    shared = pb.ModelInferRequest()
    entry = shared.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    entry.parameters["shared_memory_region"].string_param = "r"
    with pytest.raises(InvalidInput, match="shared memory is not supported"):
        decode_infer_request(shared, specs)


def test_raw_bytes_elements_are_checked():
    message = pb.ModelInferRequest(raw_input_contents=[b"\x05\x00\x00\x00abc"])
    message.inputs.add(name="s", datatype="BYTES", shape=[1])
    with pytest.raises(InvalidInput, match="claims 5 bytes but only 3 are left"):
        decode_infer_request(message)


def test_the_response_reads_back_in_tritonclient():
    logits = np.array([[0.1, 2.0, -1.0, 0.5]], np.float32)
    text = np.array([b"hello", "wörld".encode()], dtype=object)
    response = encode_infer_response(
        "m",
        3,
        "id7",
        {"logits": logits, "text": text},
        (RequestedOutput("logits", classification=2), RequestedOutput("text")),
        labels={"logits": ["zero", "one", "two", "three"]},
    )
    theirs = service_pb2.ModelInferResponse.FromString(response.SerializeToString())
    result = grpcclient.InferResult(theirs)
    assert theirs.model_version == "3" and theirs.id == "id7"
    top = result.as_numpy("logits")
    assert top.tolist() == [[b"2.000000:1:one", b"0.500000:3:three"]]
    assert result.as_numpy("text").tolist() == text.tolist()
    plain = encode_infer_response("m", 1, None, {"logits": logits}, None)
    np.testing.assert_array_equal(
        grpcclient.InferResult(
            service_pb2.ModelInferResponse.FromString(plain.SerializeToString())
        ).as_numpy("logits"),
        logits,
    )


def test_parameters_read_as_python_values():
    message = service_pb2.ModelInferRequest()
    message.parameters["max_tokens"].int64_param = 7
    message.parameters["temperature"].double_param = 0.5
    message.parameters["stream"].bool_param = True
    message.parameters["name"].string_param = "x"
    ours = pb.ModelInferRequest.FromString(message.SerializeToString())
    assert parameter_values(ours.parameters) == {
        "max_tokens": 7,
        "temperature": 0.5,
        "stream": True,
        "name": "x",
    }
