"""`/v1/.../predict` through a model's own `decode` and `encode` (a Python model's).

Without a `decode`, the body is JSON and the parsed value is the model's input; without
an `encode`, the model's result is made JSON-able (numpy arrays become lists, numpy
scalars numbers, bytes text). Whatever `decode` raises is the client's error: the
answer is 4xx with its message.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchserve.codecs.json_text import load_json
from batchserve.errors import BatchserveError, InferenceError, InvalidInput

log = logging.getLogger(__name__)

#: How deep a result may nest before it is refused (a cycle, or a runaway structure).
_MAX_DEPTH = 64


@dataclass(frozen=True)
class CustomFormatCodec:
    """A `PredictCodec` over a model's own `decode(body, content_type)` and
    `encode(output)`, either of which may be absent."""

    decode_body: Callable[[bytes, str], Any] | None = None
    encode_output: Callable[[Any], Any] | None = None
    takes_images: bool = False
    #: A Python model's decoded values are opaque (its batching is "list").
    declared_inputs = None

    def decode(self, body: bytes, content_type: str) -> Any:
        if self.decode_body is None:
            return _parse_json(body)
        try:
            return self.decode_body(body, content_type)
        except BatchserveError:
            raise
        except Exception as exc:  # the model's decode refused this body: the client's error
            log.debug("decode refused a request", exc_info=True)
            raise InvalidInput(f"the request could not be decoded: {_message(exc)}") from exc

    def encode(self, outputs: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
        if self.encode_output is not None:
            try:
                outputs = self.encode_output(outputs)
            except BatchserveError:
                raise
            except Exception as exc:
                raise InferenceError(f"the model's encode failed: {_message(exc)}") from exc
        return {"predictions": to_jsonable(outputs)}


def _message(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidInput("the body is empty; this model takes JSON")
    return load_json(body)


def to_jsonable(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON data; non-finite floats become null, as in v2 responses."""
    if depth > _MAX_DEPTH:
        raise InferenceError(f"the model's result nests deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OSU":
            return [to_jsonable(v, depth + 1) for v in value.tolist()]
        if value.dtype.kind in "fc":
            return to_jsonable(value.tolist(), depth + 1)
        return value.tolist()
    if isinstance(value, np.generic):
        return to_jsonable(value.item(), depth + 1)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, depth + 1) for v in value]
    raise InferenceError(
        f"the model's result holds a {type(value).__name__}, which JSON cannot carry; "
        "give the model an encode(output) that returns JSON-able data"
    )
