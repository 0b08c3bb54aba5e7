"""How requests become one runtime call and the call's outputs go back to its requests.

A `Batching` strategy is what the worker engine asks, so the engine itself knows
nothing of what a request holds:

- `TensorBatching` (runtimes whose `batch_format` is "tensors"): requests are named
  arrays with the batch dimension first; requests of one shape (or, with `Padding`,
  one bucketed length) are stacked into one call and its outputs split back by rows;
- `ListBatching` ("list": a Python model's own values): each request is one opaque
  value, any requests may share a call, and the call returns one result per value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchserve.errors import InferenceError, InvalidInput
from batchserve.scheduling.deferred import Deferred


class Batching(ABC):
    """How a scheduler forms batches for one kind of instance."""

    @abstractmethod
    def admit(self, inputs: Any) -> tuple[int, Hashable]:
        """A submitted request's rows and batch key (requests with equal keys may share a
        call); raises InvalidInput for a request this batching cannot carry."""

    @abstractmethod
    def admit_deferred(self, request: Deferred) -> tuple[int, Hashable]:
        """`admit` for a request whose inputs are not made yet, from what it declares."""

    @abstractmethod
    def combine(self, requests: Sequence[Any]) -> Any:
        """The one runtime call's input for these requests' inputs, in order."""

    @abstractmethod
    def separate(self, outputs: Any, requests: Sequence[Any], rows: Sequence[int]) -> list[Any]:
        """The call's outputs cut back to one result per request, the contract checked."""


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


def batch_key(inputs: Mapping[str, np.ndarray]) -> Hashable:
    """Requests with equal keys can be stacked on the first dimension."""
    return tuple((name, a.dtype.str, a.shape[1:]) for name, a in inputs.items())


def tensor_rows(inputs: Mapping[str, np.ndarray]) -> int:
    """The batch dimension every input shares; InvalidInput when they disagree."""
    sizes = set()
    for name, value in inputs.items():
        if not isinstance(value, np.ndarray) or value.ndim == 0:
            raise InvalidInput(f"input {name!r} must be an array with a batch dimension first")
        sizes.add(value.shape[0])
    if len(sizes) != 1:
        raise InvalidInput(f"inputs disagree on the batch dimension: {sorted(sizes)}")
    return sizes.pop()


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


@dataclass(frozen=True)
class TensorBatching(Batching):
    """Named arrays, batch dimension first: stacked on it, outputs split by rows; with
    `padding`, different lengths of the dynamic axes share a padded batch."""

    padding: Padding | None = None

    def admit(self, inputs: Any) -> tuple[int, Hashable]:
        if not isinstance(inputs, Mapping) or not inputs:
            raise InvalidInput("a request needs at least one input tensor")
        rows = tensor_rows(inputs)
        key = self.padding.key(inputs) if self.padding is not None else batch_key(inputs)
        return rows, key

    def admit_deferred(self, request: Deferred) -> tuple[int, Hashable]:
        if request.declared is None or self.padding is not None:
            # Padded keys depend on the lengths the inputs turn out to have.
            raise ValueError("a deferred request to a tensor model declares fixed-size inputs")
        rows = {spec.shape[0] for spec in request.declared.values()}
        if len(rows) != 1:
            raise ValueError(f"declared inputs disagree on the batch dimension: {sorted(rows)}")
        key = tuple(
            (name, spec.dtype.str, spec.shape[1:]) for name, spec in request.declared.items()
        )
        return rows.pop(), key

    def combine(self, requests: Sequence[Any]) -> dict[str, np.ndarray]:
        return stack(requests, self.padding)

    def separate(
        self, outputs: Any, requests: Sequence[Any], rows: Sequence[int]
    ) -> list[dict[str, np.ndarray]]:
        pieces = split(outputs, rows)
        if self.padding is None:
            return pieces
        return [self.padding.unpad(p, r) for p, r in zip(pieces, requests, strict=True)]


class ListBatching(Batching):
    """One opaque value per request (a Python model's decoded input): any requests share a
    call, which gets the values as a list and returns a list of as many results."""

    _KEY = "list"

    def admit(self, inputs: Any) -> tuple[int, Hashable]:
        return 1, self._KEY

    def admit_deferred(self, request: Deferred) -> tuple[int, Hashable]:
        return 1, self._KEY

    def combine(self, requests: Sequence[Any]) -> list[Any]:
        return list(requests)

    def separate(self, outputs: Any, requests: Sequence[Any], rows: Sequence[int]) -> list[Any]:
        if not isinstance(outputs, (list, tuple)):
            raise InferenceError(
                f"the model broke the batch contract: it returned a {type(outputs).__name__} "
                f"for a list of {len(requests)} inputs; return a list with one result per input"
            )
        if len(outputs) != len(requests):
            raise InferenceError(
                f"the model broke the batch contract: it returned {len(outputs)} results "
                f"for {len(requests)} inputs"
            )
        return list(outputs)
