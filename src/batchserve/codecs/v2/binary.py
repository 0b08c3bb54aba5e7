"""The binary tensor data extension, both ways: tensors as raw bytes after the JSON header.

A binary tensor carries ``parameters.binary_data_size`` and its bytes follow
the JSON header, in the order of the tensors; numbers are little-endian, BOOL
is one byte each, BYTES elements are each prefixed with a 4-byte little-endian
length. Binary inputs are zero-copy, read-only views of the body (copied only
when misaligned); a runtime that writes into its inputs must copy them first.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from batchserve.codecs.v2.header import HEADER_LENGTH_HEADER, InputHeader
from batchserve.errors import InvalidInput

#: BYTES elements on the wire: a 4-byte little-endian length, then the bytes.
BYTES_LENGTH_PREFIX = struct.Struct("<I")


def binary_chunks(headers: list[InputHeader], blob: memoryview | None) -> dict[str, memoryview]:
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


def tensor_from_binary(h: InputHeader, chunk: memoryview) -> np.ndarray:
    """One input from its chunk: a zero-copy little-endian view, or split BYTES elements."""
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


def _bytes_from_binary(h: InputHeader, chunk: memoryview) -> np.ndarray:
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


def tensor_to_binary(tensor: np.ndarray) -> bytes:
    """One output as the extension's bytes: little-endian numbers, length-prefixed BYTES."""
    if tensor.dtype.kind in "OUS":
        parts: list[bytes] = []
        for value in tensor.ravel().tolist():
            raw = _element_bytes(value)
            parts.append(BYTES_LENGTH_PREFIX.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    # tobytes writes row-major whatever the memory layout; the wire is little-endian.
    return tensor.astype(tensor.dtype.newbyteorder("<"), copy=False).tobytes()


def _element_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    # Like tritonclient: anything that is not bytes is sent as its UTF-8 text.
    return (value if isinstance(value, str) else str(value)).encode("utf-8")
