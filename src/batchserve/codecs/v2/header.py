"""The v2 request's JSON header: the envelope, ``inputs``, ``outputs`` and ``parameters``.

Everything here is checked before any tensor data is decoded, so a request
with a wrong name, datatype or shape fails cheaply; the data itself is read by
`binary` (the binary tensor data extension) or `json_data`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchserve.codecs.json_text import load_json
from batchserve.datatypes import TensorSpec, numpy_dtype
from batchserve.errors import InvalidInput

#: The HTTP header that says how long the JSON part of a binary body is.
HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"

_SHARED_MEMORY_KEYS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


@dataclass(frozen=True)
class RequestedOutput:
    """One entry of the request's ``outputs``: which output, and how to return it."""

    name: str
    #: None: follow the request's ``binary_data_output``; True/False overrides it.
    binary_data: bool | None = None
    #: 0: the raw tensor; k > 0: the top-k "score:index:label" strings instead.
    classification: int = 0
    #: Every parameter the client sent for this output, the ones above included.
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InputHeader:
    """One input's JSON description, validated before any data is decoded."""

    name: str
    datatype: str
    dtype: np.dtype
    shape: tuple[int, ...]
    count: int
    data: Any
    binary_size: int | None


def split_body(
    body: bytes | bytearray | memoryview, header_length: int | None
) -> tuple[bytes | bytearray, memoryview | None]:
    """The JSON header and, with a header length, a zero-copy view of the binary rest."""
    if header_length is None:
        return (bytes(body) if isinstance(body, memoryview) else body), None
    if isinstance(header_length, bool) or not isinstance(header_length, int):
        raise InvalidInput(f"{HEADER_LENGTH_HEADER} must be an integer, got {header_length!r}")
    view = memoryview(body).cast("B")
    if not 0 < header_length <= len(view):
        raise InvalidInput(
            f"{HEADER_LENGTH_HEADER} is {header_length} but the body has {len(view)} bytes"
        )
    return bytes(view[:header_length]), view[header_length:]


def parse_json(header: bytes | bytearray) -> dict[str, Any]:
    """The header as a JSON object; anything else is the client's error."""
    doc = load_json(header, "the request")
    if not isinstance(doc, dict):
        raise InvalidInput(f"request must be a JSON object, got {json_type(doc)}")
    return doc


def parse_parameters(raw: Any, where: str) -> dict[str, Any]:
    """A ``parameters`` object (empty when absent); shared memory is refused here."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"'parameters' of {where} must be an object, got {json_type(raw)}")
    shared = [key for key in _SHARED_MEMORY_KEYS if key in raw]
    if shared:
        raise InvalidInput(f"{where}: shared memory is not supported ({', '.join(shared)})")
    return raw


def parse_input(item: Any, index: int) -> InputHeader:
    """One entry of ``inputs``: name, datatype, shape, and where its data is."""
    if not isinstance(item, dict):
        raise InvalidInput(f"inputs[{index}] must be an object, got {json_type(item)}")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{index}] needs a 'name' (a non-empty string)")
    where = f"input {name!r}"

    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidInput(f"{where} needs a 'datatype' (e.g. \"FP32\")")
    try:
        dtype = numpy_dtype(datatype)
    except ValueError as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    datatype = datatype.upper()

    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInput(f"{where} needs a 'shape': a list of non-negative integers")

    parameters = parse_parameters(item.get("parameters"), where)
    binary_size = parameters.get("binary_data_size")
    has_data = "data" in item
    if binary_size is not None:
        if isinstance(binary_size, bool) or not isinstance(binary_size, int) or binary_size < 0:
            raise InvalidInput(f"{where}: 'binary_data_size' must be a non-negative integer")
        if has_data:
            raise InvalidInput(f"{where} has both 'data' and 'binary_data_size'; send one")
    elif not has_data:
        raise InvalidInput(f"{where} has no 'data' and no 'binary_data_size'")
    return InputHeader(
        name=name,
        datatype=datatype,
        dtype=dtype,
        shape=tuple(shape),
        count=math.prod(shape),
        data=item.get("data"),
        binary_size=binary_size,
    )


def check_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"{what} {name!r} appears more than once")
        seen.add(name)


def check_against_specs(headers: list[InputHeader], specs: Sequence[TensorSpec]) -> None:
    """Every input is one of the model's, with its datatype and a shape it accepts."""
    by_name = {spec.name: spec for spec in specs}
    expected = ", ".join(repr(s.name) for s in specs)
    for h in headers:
        spec = by_name.get(h.name)
        if spec is None:
            raise InvalidInput(f"input {h.name!r} is not an input of the model; it has {expected}")
        if h.datatype != spec.datatype:
            raise InvalidInput(
                f"input {h.name!r}: datatype {h.datatype} does not match the model's "
                f"{spec.datatype}"
            )
        if not spec.accepts(h.shape):
            raise InvalidInput(
                f"input {h.name!r}: shape {list(h.shape)} does not match the model's "
                f"{list(spec.shape)} (-1 is any size)"
            )
    sent = {h.name for h in headers}
    missing = [spec.name for spec in specs if spec.name not in sent]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise InvalidInput(f"missing input {names}; the model needs {expected}")


def parse_outputs(
    raw: Any, output_specs: Sequence[TensorSpec] | None
) -> tuple[RequestedOutput, ...] | None:
    # An empty list asks for nothing useful; like an absent one it means "all".
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list):
        raise InvalidInput(f"request 'outputs' must be a list, got {json_type(raw)}")
    requested = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidInput(f"outputs[{index}] must be an object, got {json_type(item)}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"outputs[{index}] needs a 'name' (a non-empty string)")
        parameters = parse_parameters(item.get("parameters"), f"output {name!r}")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidInput(f"output {name!r}: 'binary_data' must be true or false")
        requested.append(requested_output(name, parameters, binary))
    return checked_outputs(requested, output_specs)


def requested_output(
    name: str, parameters: dict[str, Any], binary: bool | None = None
) -> RequestedOutput:
    """One requested output, its `classification` parameter checked (JSON and gRPC alike)."""
    classes = parameters.get("classification", 0)
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0:
        raise InvalidInput(f"output {name!r}: 'classification' must be a non-negative integer")
    return RequestedOutput(name, binary, classes, parameters)


def checked_outputs(
    requested: list[RequestedOutput], output_specs: Sequence[TensorSpec] | None
) -> tuple[RequestedOutput, ...]:
    """The requested outputs, each named once and (with `output_specs`) each the model's, so
    a typo fails before inference rather than after it."""
    check_unique([r.name for r in requested], "output")
    if output_specs is not None:
        known = {spec.name for spec in output_specs}
        for r in requested:
            if r.name not in known:
                names = ", ".join(repr(spec.name) for spec in output_specs)
                raise InvalidInput(
                    f"output {r.name!r} is not an output of the model; it has {names}"
                )
    return tuple(requested)


def json_type(value: Any) -> str:
    """A JSON-flavoured type name for messages ('string', not 'str')."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
