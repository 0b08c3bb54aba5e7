"""A v2 inference request: body bytes to numpy, checked against the model.

No HTTP here: the server hands over the body and the value of the
``Inference-Header-Content-Length`` header and gets back an `InferRequest`
of numpy arrays. Everything a client can get wrong raises `InvalidInput` with
a message that names the input, so the server can answer 400 as the spec asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchserve.codecs.v2.binary import binary_chunks, tensor_from_binary
from batchserve.codecs.v2.header import (
    RequestedOutput,
    check_against_specs,
    check_unique,
    json_type,
    parse_input,
    parse_json,
    parse_outputs,
    parse_parameters,
    split_body,
)
from batchserve.codecs.v2.json_data import tensor_from_json
from batchserve.datatypes import TensorSpec
from batchserve.errors import InvalidInput


@dataclass
class InferRequest:
    """A decoded v2 inference request, ready for the scheduler.

    ``outputs`` is None when the request named no outputs: then every output of
    the model is returned.
    """

    id: str | None
    #: Input name -> tensor, in the order of the request.
    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...] | None
    #: The request-level ``parameters`` object as sent (sequence ids, priority...).
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def binary_data_output(self) -> bool:
        """The default for outputs without their own ``binary_data`` (validated as a bool)."""
        return bool(self.parameters.get("binary_data_output", False))


def decode_infer_request(
    body: bytes | bytearray | memoryview,
    header_length: int | None,
    specs: Sequence[TensorSpec] | None = None,
    *,
    output_specs: Sequence[TensorSpec] | None = None,
) -> InferRequest:
    """Decode a v2 request body (JSON, or JSON header + binary tensors) into numpy.

    ``header_length`` is the ``Inference-Header-Content-Length`` value, None when
    the client did not send it (then the whole body is JSON). With ``specs``
    (the model's inputs) every input is checked against the model: names,
    datatypes and shapes (-1 matches any size); with ``output_specs`` the
    requested output names are checked too, so a typo fails before inference
    rather than after it. Cheap checks run before any data is decoded.
    """
    header, blob = split_body(body, header_length)
    doc = parse_json(header)

    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f"request 'id' must be a string, got {json_type(request_id)}")
    parameters = parse_parameters(doc.get("parameters"), "the request")
    if not isinstance(parameters.get("binary_data_output", False), bool):
        raise InvalidInput("request parameter 'binary_data_output' must be true or false")

    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("request needs 'inputs': a non-empty list of tensors")
    headers = [parse_input(item, i) for i, item in enumerate(raw_inputs)]
    check_unique([h.name for h in headers], "input")
    if specs is not None:
        check_against_specs(headers, specs)
    chunks = binary_chunks(headers, blob)

    inputs = {
        h.name: tensor_from_binary(h, chunks[h.name]) if h.name in chunks else tensor_from_json(h)
        for h in headers
    }
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=parse_outputs(doc.get("outputs"), output_specs),
        parameters=parameters,
    )
