"""Tensors as JSON, both ways: nested lists <-> numpy, exactly.

Inputs carry ``data`` as a flat or nested list in row-major order; BYTES
elements are UTF-8 strings (and numpy object arrays of `bytes` on our side,
as binary ones are, so a model sees one type). Numbers are checked against the
declared datatype, never cast lossily; 64-bit integers past 2**53 stay exact.

Non-finite numbers on input: the JSON ``NaN``/``Infinity`` tokens (which
Python's json writes by default) are accepted for float datatypes; ``null`` is
refused, since for an input it is far more likely a missing value than a NaN.

NaN and infinity in a JSON output: JSON has no token for them, so they are
written as ``null`` (what KServe's own server does via orjson, and what
JavaScript's JSON.stringify does). tritonclient's ``as_numpy`` turns null back
into NaN for float outputs, so NaN survives a round trip but +-inf comes back
as NaN. A client that needs exact non-finite values asks for binary output
(``binary_data: true``), which is exact for every value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batchserve.codecs.v2.header import InputHeader, json_type
from batchserve.errors import InvalidInput

# Past 2**53 a float64 no longer holds every integer, so a 64-bit integer
# tensor whose JSON numpy read as float64 must be re-read exactly.
_EXACT_FLOAT_INT = 2**53


def tensor_from_json(h: InputHeader) -> np.ndarray:
    """One input from its JSON ``data``, checked against its shape and datatype."""
    where = f"input {h.name!r}"
    if not isinstance(h.data, list):
        raise InvalidInput(f"{where}: 'data' must be a list, got {json_type(h.data)}")
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


def _convert_numbers(h: InputHeader, inferred: np.ndarray) -> np.ndarray:
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


def _exact_integers(h: InputHeader) -> np.ndarray:
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


def _mismatch(h: InputHeader) -> str | None:
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
            return f"must be {kind}, got {value!r} ({json_type(value)})"
    return None


def _walk(data: Any) -> Any:
    if isinstance(data, list):
        for item in data:
            yield from _walk(item)
    else:
        yield data


def _bytes_from_json(h: InputHeader) -> np.ndarray:
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
            raise InvalidInput(f"{where}: BYTES data must be strings, got {json_type(value)}{hint}")
    if flat.size != h.count:
        raise InvalidInput(
            f"{where}: shape {list(h.shape)} needs {h.count} elements, data has {flat.size}"
        )
    return np.array([value.encode("utf-8") for value in flat], dtype=object)


def tensor_to_json(name: str, tensor: np.ndarray) -> list[Any]:
    """One output as a flat JSON list: text for BYTES, null for NaN and infinity."""
    flat = tensor.ravel()
    if tensor.dtype.kind in "OUS":
        try:
            return [_element_text(value) for value in flat.tolist()]
        except UnicodeDecodeError:
            raise InvalidInput(
                f"output {name!r} holds bytes that are not UTF-8, which JSON cannot carry; "
                "request it with binary_data: true"
            ) from None
    data = flat.tolist()
    if tensor.dtype.kind == "f":
        # JSON has no NaN/inf: write null (see the module docstring).
        for index in np.flatnonzero(~np.isfinite(flat)).tolist():
            data[index] = None
    return data


def _element_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value if isinstance(value, str) else str(value)
