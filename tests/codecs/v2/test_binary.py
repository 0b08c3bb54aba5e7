"""Binary tensor data: the chunks, their sizes and the BYTES length prefixes checked."""

from __future__ import annotations

from typing import Any

from tests.codecs.v2.wire import as_json, bad_request_test


def _binary(tensor: dict[str, Any], blob: bytes) -> tuple[bytes, int]:
    header = as_json({"inputs": [tensor]})
    return header + blob, len(header)


BAD_REQUESTS: list[tuple[str, bytes, int | None, str]] = [
    (
        "binary without header length",
        as_json(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP32",
                        "shape": [1],
                        "parameters": {"binary_data_size": 4},
                    }
                ]
            }
        ),
        None,
        "'x' has 'binary_data_size' but .* no binary part",
    ),
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


test_bad_requests_raise_invalid_input = bad_request_test(BAD_REQUESTS)
