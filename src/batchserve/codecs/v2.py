"""The KServe / Triton v2 inference protocol, requests: body bytes to numpy.

No HTTP here: the server hands over the body and the value of the
``Inference-Header-Content-Length`` header and gets back an `InferRequest`
of numpy arrays; `batchserve.codecs.v2_response` goes the other way.
Everything a client can get wrong raises `InvalidInput` with a message that
names the input, so the server can answer 400 as the spec asks.

Formats (Open Inference Protocol + Triton's binary-data and classification
extensions):

- JSON tensors carry ``data`` as a flat or nested list in row-major order;
  BYTES elements are UTF-8 strings.
- Binary tensors carry ``parameters.binary_data_size`` and their bytes follow
  the JSON header, in the order of the tensors; numbers are little-endian,
  BOOL is one byte each, BYTES elements are each prefixed with a 4-byte
  little-endian length.
- BYTES tensors are always numpy object arrays of `bytes` on our side, whether
  they came as JSON strings or binary, so a model sees one type.
- Binary inputs are zero-copy, read-only views of the body (copied only when
  misaligned); a runtime that writes into its inputs must copy them first.

Non-finite numbers on input: the JSON ``NaN``/``Infinity`` tokens (which
Python's json writes by default) are accepted for float datatypes; ``null`` is
refused, since for an input it is far more likely a missing value than a NaN.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchserve.datatypes import TensorSpec, numpy_dtype
from batchserve.errors import InvalidInput

#: The HTTP header that says how long the JSON part of a binary body is.
HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"

#: BYTES elements on the wire: a 4-byte little-endian length, then the bytes.
BYTES_LENGTH_PREFIX = struct.Struct("<I")
# Past 2**53 a float64 no longer holds every integer, so a 64-bit integer
# tensor whose JSON numpy read as float64 must be re-read exactly.
_EXACT_FLOAT_INT = 2**53
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


@dataclass(frozen=True)
class _InputHeader:
    """One input's JSON description, validated before any data is decoded."""

    name: str
    datatype: str
    dtype: np.dtype
    shape: tuple[int, ...]
    count: int
    data: Any
    binary_size: int | None


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
    header, blob = _split_body(body, header_length)
    doc = _parse_json(header)

    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f"request 'id' must be a string, got {_json_type(request_id)}")
    parameters = _parameters(doc.get("parameters"), "the request")
    if not isinstance(parameters.get("binary_data_output", False), bool):
        raise InvalidInput("request parameter 'binary_data_output' must be true or false")

    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("request needs 'inputs': a non-empty list of tensors")
    headers = [_parse_input(item, i) for i, item in enumerate(raw_inputs)]
    _check_unique([h.name for h in headers], "input")
    if specs is not None:
        _check_against_specs(headers, specs)
    chunks = _binary_chunks(headers, blob)

    inputs = {
        h.name: _from_binary(h, chunks[h.name]) if h.name in chunks else _from_json(h)
        for h in headers
    }
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=_parse_outputs(doc.get("outputs"), output_specs),
        parameters=parameters,
    )


def _split_body(
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


def _parse_json(header: bytes | bytearray) -> dict[str, Any]:
    try:
        doc = json.loads(header)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidInput(f"request is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"request must be a JSON object, got {_json_type(doc)}")
    return doc


def _parameters(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"'parameters' of {where} must be an object, got {_json_type(raw)}")
    shared = [key for key in _SHARED_MEMORY_KEYS if key in raw]
    if shared:
        raise InvalidInput(f"{where}: shared memory is not supported ({', '.join(shared)})")
    return raw


def _parse_input(item: Any, index: int) -> _InputHeader:
    if not isinstance(item, dict):
        raise InvalidInput(f"inputs[{index}] must be an object, got {_json_type(item)}")
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

    parameters = _parameters(item.get("parameters"), where)
    binary_size = parameters.get("binary_data_size")
    has_data = "data" in item
    if binary_size is not None:
        if isinstance(binary_size, bool) or not isinstance(binary_size, int) or binary_size < 0:
            raise InvalidInput(f"{where}: 'binary_data_size' must be a non-negative integer")
        if has_data:
            raise InvalidInput(f"{where} has both 'data' and 'binary_data_size'; send one")
    elif not has_data:
        raise InvalidInput(f"{where} has no 'data' and no 'binary_data_size'")
    return _InputHeader(
        name=name,
        datatype=datatype,
        dtype=dtype,
        shape=tuple(shape),
        count=math.prod(shape),
        data=item.get("data"),
        binary_size=binary_size,
    )


def _check_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"{what} {name!r} appears more than once")
        seen.add(name)


def _check_against_specs(headers: list[_InputHeader], specs: Sequence[TensorSpec]) -> None:
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


def _binary_chunks(headers: list[_InputHeader], blob: memoryview | None) -> dict[str, memoryview]:
    """Cut the binary part into one view per binary input, checking the sizes add up."""
    binary = [h for h in headers if h.binary_size is not None]
    if blob is None:
        if binary:
            raise InvalidInput(
                f"input {binary[0].name!r} has 'binary_data_size' but the request has no "
                f"binary part ({HEADER_LENGTH_HEADER} is missing)"
            )
        return {}
    chunks: dict[str, memoryview] = {}
    offset = 0
    for h in binary:
        assert h.binary_size is not None
        end = offset + h.binary_size
        if end > len(blob):
            raise InvalidInput(
                f"input {h.name!r}: binary_data_size {h.binary_size} runs past the end of the "
                f"body ({len(blob) - offset} bytes left after the inputs before it)"
            )
        chunks[h.name] = blob[offset:end]
        offset = end
    if offset != len(blob):
        raise InvalidInput(
            f"the binary part has {len(blob)} bytes but the inputs' binary_data_size add up "
            f"to {offset}"
        )
    return chunks


def _from_binary(h: _InputHeader, chunk: memoryview) -> np.ndarray:
    where = f"input {h.name!r}"
    if h.datatype == "BYTES":
        return _bytes_from_binary(h, chunk).reshape(h.shape)
    expected = h.count * h.dtype.itemsize
    if len(chunk) != expected:
        raise InvalidInput(
            f"{where}: binary_data_size is {len(chunk)} bytes but shape {list(h.shape)} of "
            f"{h.datatype} needs {expected}"
        )
    # Zero-copy view of the request body; the wire format is little-endian.
    array = np.frombuffer(chunk, dtype=h.dtype.newbyteorder("<"))
    if h.datatype == "BOOL" and array.size and array.view(np.uint8).max() > 1:
        raise InvalidInput(f"{where}: BOOL bytes must be 0 or 1")
    if not array.dtype.isnative or not array.flags.aligned:
        # Misaligned views (a tensor after an odd-sized one) are legal numpy but
        # slow, and some runtimes refuse them; one copy fixes both.
        array = array.astype(h.dtype)
    return array.reshape(h.shape)


def _bytes_from_binary(h: _InputHeader, chunk: memoryview) -> np.ndarray:
    """Split 4-byte-length-prefixed elements; one Python step per element is inherent here."""
    elements: list[bytes] = []
    offset, size = 0, len(chunk)
    while offset < size:
        if len(elements) == h.count:
            raise InvalidInput(
                f"input {h.name!r}: BYTES data has more than the {h.count} elements of its shape"
            )
        if offset + 4 > size:
            raise InvalidInput(f"input {h.name!r}: BYTES data ends inside a length prefix")
        (length,) = BYTES_LENGTH_PREFIX.unpack_from(chunk, offset)
        offset += 4
        if offset + length > size:
            raise InvalidInput(
                f"input {h.name!r}: BYTES element {len(elements)} claims {length} bytes but "
                f"only {size - offset} are left"
            )
        elements.append(bytes(chunk[offset : offset + length]))
        offset += length
    if len(elements) != h.count:
        raise InvalidInput(
            f"input {h.name!r}: shape {list(h.shape)} needs {h.count} elements, "
            f"BYTES data has {len(elements)}"
        )
    return np.array(elements, dtype=object)


def _from_json(h: _InputHeader) -> np.ndarray:
    where = f"input {h.name!r}"
    if not isinstance(h.data, list):
        raise InvalidInput(f"{where}: 'data' must be a list, got {_json_type(h.data)}")
    if h.datatype == "BYTES":
        return _bytes_from_json(h).reshape(h.shape)
    try:
        # Let numpy infer the type first: converting straight to the target
        # dtype would silently accept "1.5" for FP32 or truncate 1.5 for INT32.
        inferred = np.asarray(h.data)
    except ValueError:
        raise InvalidInput(
            f"{where}: 'data' is ragged (nested lists of different lengths)"
        ) from None
    if inferred.size != h.count:
        raise InvalidInput(
            f"{where}: shape {list(h.shape)} needs {h.count} elements, data has {inferred.size}"
        )
    if h.count == 0:
        return np.empty(h.shape, dtype=h.dtype)
    return _convert_numbers(h, inferred).reshape(h.shape)


def _convert_numbers(h: _InputHeader, inferred: np.ndarray) -> np.ndarray:
    """Cast numpy's reading of JSON numbers to the declared datatype, refusing lossy casts."""
    where = f"input {h.name!r}"
    got, want = inferred.dtype.kind, h.dtype.kind
    if want == "b" or got == "b":
        if want == got:
            return inferred
        raise InvalidInput(f"{where}: {h.datatype} data {_mismatch(h) or 'has the wrong type'}")
    if got not in "iuf":
        # Strings, nulls, or integers too big for any numpy integer type.
        problem = _mismatch(h)
        if problem is not None:
            raise InvalidInput(f"{where}: {h.datatype} data {problem}")
        try:
            inferred = np.array([float(value) for value in _walk(h.data)])
        except OverflowError:
            raise InvalidInput(f"{where}: a value is out of range for {h.datatype}") from None
        got = "f"

    if want == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            out = inferred.astype(h.dtype)
        overflow = np.isinf(out) & np.isfinite(inferred)
        if overflow.any():
            value = inferred.ravel()[np.flatnonzero(overflow)[0]]
            raise InvalidInput(f"{where}: value {value} is out of range for {h.datatype}")
        return out

    info = np.iinfo(h.dtype)
    if got == "f":
        if not np.isfinite(inferred).all():
            raise InvalidInput(f"{where}: {h.datatype} data must be integers, got NaN or infinity")
        fractional = inferred != np.trunc(inferred)
        if fractional.any():
            value = inferred.ravel()[np.flatnonzero(fractional)[0]]
            raise InvalidInput(f"{where}: {h.datatype} data must be integers, got {value}")
        if h.dtype.itemsize == 8 and np.abs(inferred).max() >= _EXACT_FLOAT_INT:
            # numpy reads [1, 2**63] as float64 (no integer type holds both
            # -2**63 and 2**64-1), which would round the big one.
            return _exact_integers(h)
    low, high = inferred.min().item(), inferred.max().item()
    for value in (low, high):
        if not info.min <= value <= info.max:
            raise InvalidInput(
                f"{where}: value {value} is out of range for {h.datatype} [{info.min}, {info.max}]"
            )
    return inferred.astype(h.dtype)


def _exact_integers(h: _InputHeader) -> np.ndarray:
    """Re-read large 64-bit integers one by one, so none is rounded through float64."""
    where = f"input {h.name!r}"
    flat = np.asarray(h.data, dtype=object).ravel().tolist()
    info = np.iinfo(h.dtype)
    for value in flat:
        if isinstance(value, float):
            value = int(value)  # already known to be integral and finite
        if not info.min <= value <= info.max:
            raise InvalidInput(
                f"{where}: value {value} is out of range for {h.datatype} [{info.min}, {info.max}]"
            )
    return np.array([int(v) for v in flat], dtype=h.dtype)


def _mismatch(h: _InputHeader) -> str | None:
    """Describe the first element that does not fit the datatype (only on the error path).

    None when every element has the right JSON type: then the data only holds
    integers too large for numpy's integer types.
    """
    for value in _walk(h.data):
        if h.dtype.kind == "b":
            ok = isinstance(value, bool)
        elif h.dtype.kind in "iu":
            ok = isinstance(value, int) and not isinstance(value, bool)
            if ok and not np.iinfo(h.dtype).min <= value <= np.iinfo(h.dtype).max:
                return f"value {value} is out of range"
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            kind = {"b": "true/false", "i": "integers", "u": "integers"}.get(
                h.dtype.kind, "numbers"
            )
            return f"must be {kind}, got {value!r} ({_json_type(value)})"
    return None


def _walk(data: Any) -> Any:
    if isinstance(data, list):
        for item in data:
            yield from _walk(item)
    else:
        yield data


def _bytes_from_json(h: _InputHeader) -> np.ndarray:
    where = f"input {h.name!r}"
    try:
        # dtype=object keeps strings whole; nested lists of equal lengths become axes.
        flat = np.asarray(h.data, dtype=object).ravel()
    except ValueError:
        raise InvalidInput(
            f"{where}: 'data' is ragged (nested lists of different lengths)"
        ) from None
    # Types first: a ragged nesting shows up as list elements, which explains
    # a wrong element count better than the count itself would.
    for value in flat:
        if not isinstance(value, str):
            hint = " (or nested lists of different lengths)" if isinstance(value, list) else ""
            raise InvalidInput(
                f"{where}: BYTES data must be strings, got {_json_type(value)}{hint}"
            )
    if flat.size != h.count:
        raise InvalidInput(
            f"{where}: shape {list(h.shape)} needs {h.count} elements, data has {flat.size}"
        )
    return np.array([value.encode("utf-8") for value in flat], dtype=object)


def _parse_outputs(
    raw: Any, output_specs: Sequence[TensorSpec] | None
) -> tuple[RequestedOutput, ...] | None:
    # An empty list asks for nothing useful; like an absent one it means "all".
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list):
        raise InvalidInput(f"request 'outputs' must be a list, got {_json_type(raw)}")
    requested = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidInput(f"outputs[{index}] must be an object, got {_json_type(item)}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"outputs[{index}] needs a 'name' (a non-empty string)")
        where = f"output {name!r}"
        parameters = _parameters(item.get("parameters"), where)
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidInput(f"{where}: 'binary_data' must be true or false")
        classes = parameters.get("classification", 0)
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0:
            raise InvalidInput(f"{where}: 'classification' must be a non-negative integer")
        requested.append(RequestedOutput(name, binary, classes, parameters))
    _check_unique([r.name for r in requested], "output")
    if output_specs is not None:
        known = {spec.name for spec in output_specs}
        for r in requested:
            if r.name not in known:
                names = ", ".join(repr(spec.name) for spec in output_specs)
                raise InvalidInput(
                    f"output {r.name!r} is not an output of the model; it has {names}"
                )
    return tuple(requested)


def _json_type(value: Any) -> str:
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
