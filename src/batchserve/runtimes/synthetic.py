"""Made-up inputs for a model: for profiling, warm-up and the safety check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from batchserve.datatypes import TensorSpec


def random_inputs(
    specs: Sequence[TensorSpec], shapes: Mapping[str, tuple[int, ...]], seed: int = 0
) -> dict[str, np.ndarray]:
    """Inputs of the given shapes; different seeds give different values.

    Raises ValueError for a dtype no meaningful value can be made up for (strings).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = shapes[spec.name]
        kind = spec.dtype.kind
        if kind in "fc":
            out[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif kind == "b":
            out[spec.name] = rng.random(shape) < 0.5
        elif kind in "iu":
            high = 256 if spec.dtype == np.uint8 else 10  # pixels, or small ids that index anything
            out[spec.name] = rng.integers(0, high, size=shape).astype(spec.dtype)
        else:
            raise ValueError(f"input {spec.name!r} is {spec.dtype}; no input can be made up for it")
    return out
