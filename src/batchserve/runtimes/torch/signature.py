"""A module's inputs and outputs as `TensorSpec`s: from an exported program's signature,
from `forward`'s parameter names, and torch dtypes as numpy's."""

from __future__ import annotations

import inspect

import numpy as np
import torch

from batchserve.datatypes import TensorSpec
from batchserve.errors import ModelLoadError

_TORCH_TO_NUMPY: dict[torch.dtype, np.dtype] = {
    torch.float32: np.dtype(np.float32),
    torch.float16: np.dtype(np.float16),
    torch.float64: np.dtype(np.float64),
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.uint8: np.dtype(np.uint8),
    torch.bool: np.dtype(np.bool_),
}


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    try:
        return _TORCH_TO_NUMPY[dtype]
    except KeyError:
        raise ModelLoadError(f"tensor dtype {dtype} has no numpy equivalent") from None


def exported_specs(
    program: torch.export.ExportedProgram, declared_outputs: tuple[TensorSpec, ...] | None
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs from the program's signature and fake tensors; symbolic dims -> -1."""

    def spec(name: str, value: object) -> TensorSpec:
        if not isinstance(value, torch.Tensor):
            raise ModelLoadError(f"exported input/output {name!r} is not a tensor")
        shape = tuple(d if isinstance(d, int) else -1 for d in value.shape)
        return TensorSpec(name, numpy_dtype(value.dtype), shape)

    nodes = {n.name: n for n in program.graph.nodes}
    user_inputs = program.graph_signature.user_inputs
    inputs = tuple(spec(str(n), nodes[str(n)].meta.get("val")) for n in user_inputs)
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    user_outputs = list(program.graph_signature.user_outputs)
    values_by_name = {getattr(a, "name", None): a for a in output_node.args[0]}
    values = [values_by_name[n].meta.get("val") for n in user_outputs]
    out_spec = program.call_spec.out_spec
    if declared_outputs and len(declared_outputs) == len(values):
        names = [o.name for o in declared_outputs]
    elif out_spec is not None and out_spec.type is dict:
        names = [str(k) for k in out_spec.context]
    else:
        names = output_names(len(values))
    return inputs, tuple(spec(n, v) for n, v in zip(names, values, strict=True))


def output_names(count: int) -> list[str]:
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def forward_argument_names(module: torch.nn.Module) -> list[str]:
    """Positional argument names of `forward`, from the TorchScript schema or the signature."""
    forward = module.forward
    schema = getattr(forward, "schema", None)
    if schema is not None:
        return [a.name for a in schema.arguments if a.name != "self"]
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]
