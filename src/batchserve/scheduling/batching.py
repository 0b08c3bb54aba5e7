"""Stack requests into one batch and split a batch's outputs back to its requests."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from batchserve.errors import InferenceError, InvalidInput


@dataclass(frozen=True)
class Padding:
    """Variable-length batching: which axes of which inputs may differ between the
    requests of one batch, and what fills them.

    Requests group by their lengths rounded up to `bucket` (see `key`), and a batch is
    padded to its longest request, so no request is padded by a bucket or more.
    Outputs named in `unpad_outputs` keep the padded length on axis 1 and are cut
    back to each request's own length.
    """

    axes: Mapping[str, tuple[int, ...]]  # input name -> its dynamic non-batch axes
    bucket: int = 16
    value: float = 0.0
    values: Mapping[str, float] = field(default_factory=dict)
    unpad_outputs: tuple[str, ...] = ()

    def key(self, inputs: Mapping[str, np.ndarray]) -> Hashable:
        """Like `batch_key`, with the padded axes' lengths rounded up to the bucket."""
        parts = []
        for name, a in inputs.items():
            axes = self.axes.get(name, ())
            dims = tuple(
                -(-d // self.bucket) * self.bucket if i in axes else d
                for i, d in enumerate(a.shape)
            )
            parts.append((name, a.dtype.str, dims[1:]))
        return tuple(parts)

    def stack(self, requests: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Pad every request to the batch's longest on the padded axes, then stack."""
        out: dict[str, np.ndarray] = {}
        for name in requests[0]:
            arrays = [r[name] for r in requests]
            axes = self.axes.get(name, ())
            if axes and len(requests) > 1:
                target = [max(a.shape[i] for a in arrays) for i in range(arrays[0].ndim)]
                fill = self.values.get(name, self.value)
                arrays = [_pad_to(a, target, axes, fill) for a in arrays]
            out[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        return out

    def unpad(
        self, outputs: dict[str, np.ndarray], inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Cut `unpad_outputs` back on axis 1 to the request's own padded-input length."""
        if not self.unpad_outputs:
            return outputs
        own = max(
            (a.shape[1] for n, a in inputs.items() if 1 in self.axes.get(n, ()) and a.ndim > 1),
            default=None,
        )
        if own is None:
            return outputs
        return {
            name: value[:, :own] if name in self.unpad_outputs and value.ndim > 1 else value
            for name, value in outputs.items()
        }


def _pad_to(a: np.ndarray, target: list[int], axes: tuple[int, ...], fill: float) -> np.ndarray:
    widths = [(0, target[i] - a.shape[i] if i in axes else 0) for i in range(a.ndim)]
    if not any(after for _, after in widths):
        return a
    if any(a.shape[i] != target[i] for i in range(1, a.ndim) if i not in axes):
        raise InvalidInput(f"shape {list(a.shape)} differs from the batch in a fixed dimension")
    return np.pad(a, widths, constant_values=np.array(fill).astype(a.dtype))


def stack(
    requests: Sequence[Mapping[str, np.ndarray]], padding: Padding | None = None
) -> dict[str, np.ndarray]:
    """Concatenate requests on the first dimension; with `padding`, pad them to one shape."""
    if padding is not None:
        return padding.stack(requests)
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
