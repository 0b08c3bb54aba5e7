"""Stack requests into one batch and split a batch's outputs back to its requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from batchserve.errors import InferenceError


def stack(requests: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate same-shaped requests on the first dimension."""
    if len(requests) == 1:
        return dict(requests[0])
    return {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}


def split(outputs: Mapping[str, np.ndarray], rows: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Cut each output back into per-request pieces, checking the batch contract."""
    total = sum(rows)
    for name, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != total:
            raise InferenceError(
                f"the model broke the batch contract: output {name!r} has shape "
                f"{list(value.shape)} for a batch of {total} rows"
            )
    if len(rows) == 1:
        return [dict(outputs)]
    bounds = np.cumsum(rows)[:-1]
    pieces = {name: np.split(value, bounds) for name, value in outputs.items()}
    return [{name: pieces[name][i] for name in outputs} for i in range(len(rows))]
