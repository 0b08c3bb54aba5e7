"""Tensors as every layer describes them: numpy dtypes, the v2 protocol's datatype names,
and `TensorSpec` (name, dtype, shape with -1 for a dynamic dimension)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_NUMPY_TO_V2 = {dtype: name for name, dtype in _V2_TO_NUMPY.items()}


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype of a v2 datatype name ('FP32' -> float32)."""
    try:
        return _V2_TO_NUMPY[datatype.upper()]
    except KeyError:
        raise ValueError(
            f"unknown datatype {datatype!r}; expected one of {sorted(_V2_TO_NUMPY)}"
        ) from None


def v2_datatype(dtype: np.dtype | type) -> str:
    """The v2 datatype name of a numpy dtype (float32 -> 'FP32')."""
    dtype = np.dtype(dtype)
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    try:
        return _NUMPY_TO_V2[dtype]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no v2 datatype") from None


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, numpy dtype, shape with -1 for a dynamic dimension."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def datatype(self) -> str:
        return v2_datatype(self.dtype)

    def metadata(self) -> dict[str, object]:
        """As the v2 protocol's metadata describes a tensor."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @property
    def batched(self) -> bool:
        """Whether the first dimension is dynamic, so requests can be stacked on it."""
        return bool(self.shape) and self.shape[0] == -1

    def accepts(self, shape: Sequence[int]) -> bool:
        """Whether a tensor of `shape` fits: the same rank, and every fixed dimension equal."""
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True)
        )

    def concrete(self, rows: int) -> tuple[int, ...] | None:
        """The shape with a dynamic batch dimension set to `rows`; None when another
        dimension is dynamic too, so no concrete shape follows from the spec alone."""
        dims = list(self.shape)
        if dims and dims[0] == -1:
            dims[0] = rows
        if any(d < 0 for d in dims):
            return None
        return tuple(dims)
