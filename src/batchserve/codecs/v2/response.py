"""A v2 inference response: numpy to body bytes, and Triton's classification extension.

The server hands over the model's outputs and what the request asked for
(`RequestedOutput`) and gets back the body and, when any output is binary, the
value for ``Inference-Header-Content-Length``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from batchserve.codecs.labels import top_k
from batchserve.codecs.v2.binary import tensor_to_binary
from batchserve.codecs.v2.header import RequestedOutput
from batchserve.codecs.v2.json_data import tensor_to_json
from batchserve.datatypes import v2_datatype
from batchserve.errors import InferenceError, InvalidInput


def encode_infer_response(
    model_name: str,
    model_version: str | int | None,
    request_id: str | None,
    outputs: Mapping[str, np.ndarray],
    requested: Sequence[RequestedOutput] | None,
    binary_default: bool,
    *,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> tuple[bytes, int | None]:
    """Encode a v2 response; returns the body and the JSON header's length if any output is binary.

    With a header length the server sends ``Inference-Header-Content-Length``
    and ``application/octet-stream``; with None the body is plain JSON
    (``application/json``). ``requested`` is the request's ``outputs`` (None:
    every output, in the order of ``outputs``); ``binary_default`` is the
    request's ``binary_data_output``, which each output's own ``binary_data``
    overrides. ``labels`` maps an output name to its class labels, used when
    that output is requested with ``classification``.
    """
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for request, tensor in selected_outputs(outputs, requested, labels):
        binary = binary_default if request.binary_data is None else request.binary_data
        entry: dict[str, Any] = {
            "name": request.name,
            "datatype": v2_datatype(tensor.dtype),
            "shape": list(tensor.shape),
        }
        if binary:
            raw = tensor_to_binary(tensor)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = tensor_to_json(request.name, tensor)
        entries.append(entry)

    doc: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        doc["model_version"] = str(model_version)
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = entries
    # allow_nan=False: non-finite values were already replaced; never emit
    # the NaN token, which strict JSON parsers refuse.
    header = json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def selected_outputs(
    outputs: Mapping[str, np.ndarray],
    requested: Sequence[RequestedOutput] | None,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[RequestedOutput, np.ndarray]]:
    """The outputs a response carries, in order, each with the tensor to send: those the
    request asked for (None: every output), a `classification` one as its top-k strings.
    Shared by the HTTP and gRPC encoders."""
    if not isinstance(outputs, Mapping):  # a Python model's result for a v2 request
        raise InferenceError(
            f"the model returned a {type(outputs).__name__} for a v2 request; "
            "v2 outputs are a dict of named arrays"
        )
    selection = list(requested) if requested is not None else [RequestedOutput(n) for n in outputs]
    selected = []
    for request in selection:
        if request.name not in outputs:
            names = ", ".join(repr(name) for name in outputs)
            raise InvalidInput(
                f"output {request.name!r} is not an output of the model; it has {names}"
            )
        tensor = np.asarray(outputs[request.name])
        if request.classification:
            if tensor.dtype.kind not in "iuf" or tensor.ndim == 0:
                raise InvalidInput(
                    f"output {request.name!r}: classification needs numeric scores with at "
                    f"least one axis, got {v2_datatype(tensor.dtype)} of shape {list(tensor.shape)}"
                )
            class_labels = labels.get(request.name) if labels else None
            tensor = classify(tensor, request.classification, class_labels)
        selected.append((request, tensor))
    return selected


def classify(tensor: np.ndarray, k: int, labels: Sequence[str] | None = None) -> np.ndarray:
    """Triton's classification extension: top-k along the last axis as "score:index:label".

    Returns an object array of UTF-8 `bytes` of shape ``tensor.shape[:-1] +
    (min(k, classes),)``, highest score first (ties: lower index first). The
    score is written as C's ``%f`` for floats (what Triton's std::to_string
    gives) and as an integer for integer scores; the label part is left out
    when there is no label for the index ("score:index").
    """
    scores = np.asarray(tensor)
    if scores.dtype.kind not in "iuf" or scores.ndim == 0:
        raise ValueError(
            f"classification needs numeric scores with an axis, got {scores.dtype} "
            f"of shape {scores.shape}"
        )
    indices, values = top_k(scores, k)
    as_float = scores.dtype.kind == "f"
    names = labels if labels is not None else ()
    results = []
    for index, value in zip(indices.ravel().tolist(), values.ravel().tolist(), strict=True):
        score = f"{value:f}" if as_float else str(value)
        label = names[index] if index < len(names) else ""
        results.append(f"{score}:{index}:{label}" if label else f"{score}:{index}")
    encoded = np.array([text.encode("utf-8") for text in results], dtype=object)
    return encoded.reshape(indices.shape)
