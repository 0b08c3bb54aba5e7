"""The inputs a safety check feeds the model: shapes from the model or the user, random values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from batchserve.datatypes import TensorSpec
from batchserve.runtimes import synthetic
from batchserve.runtimes.base import ModelInstance


class InputShapeError(ValueError):
    """The check cannot know what shape to feed the model; the message says what to pass."""


def parse_shape_arguments(values: Sequence[str]) -> dict[str | None, tuple[int, ...]]:
    """`["1,3,224,224"]` or `["x=1,4", "mask=1,4"]` -> {None or name: shape}."""
    shapes: dict[str | None, tuple[int, ...]] = {}
    for value in values:
        name, _, dims = value.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            raise InputShapeError(f"--input-shape {value!r}: expected e.g. 1,3,224,224") from None
        if not shape or any(d < 1 for d in shape):
            raise InputShapeError(f"--input-shape {value!r}: dimensions must be positive")
        key = name.strip() or None
        if key in shapes:
            raise InputShapeError(f"--input-shape given twice for {key or 'the input'}")
        shapes[key] = shape
    return shapes


def resolve_input_shapes(
    instance: ModelInstance, given: Mapping[str | None, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """One concrete shape per input: the user's, else the model's with a dynamic batch of 1."""
    specs = instance.inputs
    names = [s.name for s in specs]
    if None in given:
        if len(specs) != 1:
            raise InputShapeError(
                f"the model has inputs {names}; name each one: --input-shape NAME=1,2,3"
            )
        given = {names[0]: given[None], **{k: v for k, v in given.items() if k is not None}}
    unknown = [k for k in given if k not in names]
    if unknown:
        raise InputShapeError(f"--input-shape for {unknown}, but the model's inputs are {names}")
    described = getattr(instance, "shapes_known", True)
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        if spec.name in given:
            shape = given[spec.name]
            if described and not spec.accepts(shape):
                raise InputShapeError(
                    f"--input-shape {list(shape)} does not fit input {spec.name!r} "
                    f"of shape {list(spec.shape)}"
                )
            shapes[spec.name] = shape
            continue
        if not described:
            raise InputShapeError(
                f"the artifact does not say what shape input {spec.name!r} has; pass "
                "--input-shape 1,3,224,224 (for example) or declare `inputs:` in model.yaml"
            )
        shape = spec.concrete(1)
        if shape is None:
            raise InputShapeError(
                f"input {spec.name!r} has dynamic dimensions besides the batch: "
                f"{list(spec.shape)}; pass --input-shape with every dimension"
            )
        shapes[spec.name] = shape
    return shapes


def random_inputs(
    specs: Sequence[TensorSpec], shapes: Mapping[str, tuple[int, ...]], seed: int
) -> dict[str, np.ndarray]:
    """Inputs of the given shapes; different seeds give different values."""
    try:
        return synthetic.random_inputs(specs, shapes, seed)
    except ValueError as exc:
        raise InputShapeError(f"{exc}; the check cannot make one") from exc
