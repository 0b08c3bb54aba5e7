"""v2 inference over gRPC: a `ModelInferRequest` to numpy, numpy to a `ModelInferResponse`.

The request becomes the same `InferRequest` the HTTP codec makes (`codecs.v2`), so
the server runs one inference path for both protocols; everything a client can get
wrong raises `InvalidInput` naming the input, before any data is decoded when the
check is cheap.

Tensor data comes one of two ways, as in Triton:

- typed ``contents``: one repeated field per family of datatypes (``fp32_contents``,
  ``int_contents`` for INT8/16/32...). FP16 has no typed field and must be raw.
- ``raw_input_contents``: one bytes entry per input, in order, in the v2 binary
  format (little-endian, BOOL one byte, BYTES length-prefixed), read and written by
  the HTTP binary extension's own code (`codecs.v2.binary`). When a request uses
  raw contents, every input must: mixing both is refused.

Outputs always go back as ``raw_output_contents`` (what Triton does and what
tritonclient reads fastest). Raw numeric inputs are zero-copy, read-only views of
the message's bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from batchserve.codecs.grpc import inference_pb2 as pb
from batchserve.codecs.v2 import InferRequest, RequestedOutput
from batchserve.codecs.v2.binary import tensor_from_binary, tensor_to_binary
from batchserve.codecs.v2.header import (
    InputHeader,
    check_against_specs,
    check_unique,
    checked_outputs,
    parse_parameters,
    requested_output,
)
from batchserve.codecs.v2.response import selected_outputs
from batchserve.datatypes import TensorSpec, numpy_dtype, v2_datatype
from batchserve.errors import InvalidInput

#: Which typed contents field carries each datatype (FP16 and BF16 have none).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
#: The numpy type each typed field holds on the wire, before narrowing to the datatype.
_FIELD_DTYPE = {
    "bool_contents": np.dtype(np.bool_),
    "int_contents": np.dtype(np.int32),
    "int64_contents": np.dtype(np.int64),
    "uint_contents": np.dtype(np.uint32),
    "uint64_contents": np.dtype(np.uint64),
    "fp32_contents": np.dtype(np.float32),
    "fp64_contents": np.dtype(np.float64),
}


# -- parameters ------------------------------------------------------------------------


def parameter_values(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A protobuf parameters map as plain Python values (bool, int, str, float)."""
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        which = parameter.WhichOneof("parameter_choice")
        values[key] = None if which is None else getattr(parameter, which)
    return values


def set_parameter(parameters: MutableMapping[str, pb.InferParameter], key: str, value: Any) -> None:
    """Put one plain value into a protobuf parameters map, in the field of its type."""
    parameter = parameters[key]
    if isinstance(value, bool):  # before int: a bool is an int in Python
        parameter.bool_param = value
    elif isinstance(value, int):
        parameter.int64_param = value
    elif isinstance(value, float):
        parameter.double_param = value
    else:
        parameter.string_param = str(value)


def _parameters(parameters: Mapping[str, pb.InferParameter], where: str) -> dict[str, Any]:
    """The values of a parameters map, shared memory refused as over HTTP."""
    return parse_parameters(parameter_values(parameters), where)


# -- requests --------------------------------------------------------------------------


def decode_infer_request(
    message: pb.ModelInferRequest,
    specs: Sequence[TensorSpec] | None = None,
    *,
    output_specs: Sequence[TensorSpec] | None = None,
) -> InferRequest:
    """A `ModelInferRequest` as numpy inputs and the outputs it asks for.

    With ``specs`` (the model's inputs) names, datatypes and shapes are checked
    against the model (-1 matches any size), and every input of the model must be
    there; with ``output_specs`` the requested output names are checked too.
    """
    where = "the request"
    parameters = _parameters(message.parameters, where)
    inputs = list(message.inputs)
    if not inputs:
        raise InvalidInput("request needs 'inputs': at least one tensor")
    raw = message.raw_input_contents
    if raw:
        if len(raw) != len(inputs):
            raise InvalidInput(
                f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs; "
                "with raw contents every input needs one, in order"
            )
        typed = [tensor.name for tensor in inputs if tensor.HasField("contents")]
        if typed:
            raise InvalidInput(
                f"input {typed[0]!r} has typed contents but the request uses "
                "raw_input_contents; send every input one way"
            )
    headers = [
        _input_header(tensor, len(raw[index]) if raw else None)
        for index, tensor in enumerate(inputs)
    ]
    check_unique([h.name for h in headers], "input")
    if specs is not None:
        check_against_specs(headers, specs)
    outputs = _requested_outputs(message.outputs, output_specs)
    decoded: dict[str, np.ndarray] = {}
    for index, (tensor, header) in enumerate(zip(inputs, headers, strict=True)):
        if raw:
            decoded[header.name] = tensor_from_raw(header, raw[index])
        else:
            decoded[header.name] = tensor_from_contents(header, tensor.contents)
    return InferRequest(
        id=message.id or None,
        inputs=decoded,
        outputs=outputs,
        parameters=parameters,
    )


def _input_header(
    tensor: pb.ModelInferRequest.InferInputTensor, raw_size: int | None
) -> InputHeader:
    """An input's description, checked before its data is read (as the HTTP codec's)."""
    if not tensor.name:
        raise InvalidInput("every input needs a 'name'")
    where = f"input {tensor.name!r}"
    try:
        dtype = numpy_dtype(tensor.datatype)
    except ValueError as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    shape = tuple(tensor.shape)
    if any(d < 0 for d in shape):
        raise InvalidInput(f"{where}: shape {list(shape)} has a negative dimension")
    _parameters(tensor.parameters, where)
    return InputHeader(
        name=tensor.name,
        datatype=tensor.datatype.upper(),
        dtype=dtype,
        shape=shape,
        count=math.prod(shape),
        data=None,
        binary_size=raw_size,
    )


def tensor_from_contents(h: InputHeader, contents: pb.InferTensorContents) -> np.ndarray:
    """An input's typed contents as an array of its datatype, checking count and range."""
    where = f"input {h.name!r}"
    field = CONTENTS_FIELD.get(h.datatype)
    if field is None:
        raise InvalidInput(f"{where}: {h.datatype} has no typed contents; send raw_input_contents")
    others = [f.name for f, _ in contents.ListFields() if f.name != field]
    if others:
        raise InvalidInput(f"{where}: {h.datatype} data goes in contents.{field}, not {others[0]}")
    values = getattr(contents, field)
    if len(values) != h.count:
        raise InvalidInput(
            f"{where}: shape {list(h.shape)} needs {h.count} elements, contents.{field} has "
            f"{len(values)}"
        )
    if h.datatype == "BYTES":
        return np.array(list(values), dtype=object).reshape(h.shape)
    wide = np.fromiter(values, dtype=_FIELD_DTYPE[field], count=h.count)
    if h.dtype.kind in "iu" and h.dtype != wide.dtype and wide.size:
        info = np.iinfo(h.dtype)
        for value in (int(wide.min()), int(wide.max())):
            if not info.min <= value <= info.max:
                raise InvalidInput(
                    f"{where}: value {value} is out of range for {h.datatype} "
                    f"[{info.min}, {info.max}]"
                )
    return wide.astype(h.dtype, copy=False).reshape(h.shape)


def tensor_from_raw(h: InputHeader, raw: bytes) -> np.ndarray:
    """An input's raw contents, the v2 binary format: a zero-copy view for numbers."""
    expected = h.count * h.dtype.itemsize
    if h.datatype != "BYTES" and len(raw) != expected:
        raise InvalidInput(
            f"input {h.name!r}: raw contents have {len(raw)} bytes but shape {list(h.shape)} "
            f"of {h.datatype} needs {expected}"
        )
    return tensor_from_binary(h, memoryview(raw))


def _requested_outputs(
    outputs: Sequence[pb.ModelInferRequest.InferRequestedOutputTensor],
    output_specs: Sequence[TensorSpec] | None,
) -> tuple[RequestedOutput, ...] | None:
    if not outputs:
        return None
    requested = []
    for output in outputs:
        if not output.name:
            raise InvalidInput("every requested output needs a 'name'")
        parameters = _parameters(output.parameters, f"output {output.name!r}")
        requested.append(requested_output(output.name, parameters))
    return checked_outputs(requested, output_specs)


# -- responses -------------------------------------------------------------------------


def encode_infer_response(
    model_name: str,
    model_version: str | int,
    request_id: str | None,
    outputs: Mapping[str, np.ndarray],
    requested: Sequence[RequestedOutput] | None,
    *,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> pb.ModelInferResponse:
    """The model's outputs (those asked for, else all) as a response with raw contents.

    An output requested with ``classification: k`` becomes BYTES "score:index:label"
    strings, the top k along the last axis (Triton's classification extension).
    """
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=str(model_version), id=request_id or ""
    )
    for request, tensor in selected_outputs(outputs, requested, labels):
        response.outputs.add(
            name=request.name, datatype=v2_datatype(tensor.dtype), shape=tensor.shape
        )
        response.raw_output_contents.append(tensor_to_binary(tensor))
    return response
