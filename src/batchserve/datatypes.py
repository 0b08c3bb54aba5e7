"""Tensor data types: numpy dtypes and the v2 protocol's datatype names."""

from __future__ import annotations

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
