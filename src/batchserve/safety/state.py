"""What a model object holds, and what one call of it changed.

A snapshot of a torch module records every submodule's Python attributes (what
`forward` can write with `self.x = ...`), its buffers and its parameters. A snapshot
of any other object (a Python model's) records its own attributes, and walks any torch
module among them as above, under the attribute's name. Tensors are compared by
identity and version counter, which every in-place write bumps, so a snapshot never
copies weights. Python values are copied a few levels deep.

torch is imported only if it already is: a Python model without torch needs none.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

_MAX_ITEMS = 256  # a container longer than this is compared by length only
_DEPTH = 2  # how far into containers and plain objects a snapshot looks
_SMALL_TENSOR = 4  # tensors up to this many elements are quoted in messages
_SCRIPT_KEYS = frozenset({"_c", "_concrete_type", "_initializing", "forward"})
_SCRIPT_HIDDEN_ATTRIBUTES = frozenset({"training", "_is_full_backward_hook"})


def _torch() -> Any | None:
    """torch, if something has imported it (no tensor exists otherwise)."""
    return sys.modules.get("torch")


@functools.cache
def _module_keys() -> frozenset[str]:
    torch = _torch()
    assert torch is not None
    return frozenset(vars(torch.nn.Module()))


@functools.cache
def _graph_keys() -> frozenset[str]:
    torch = _torch()
    assert torch is not None
    graph = torch.fx.GraphModule(torch.nn.Module(), torch.fx.Graph())
    return frozenset(vars(graph)) | {"_in_spec", "_out_spec", "range_constraints"}


def is_torch_module(value: object) -> bool:
    torch = _torch()
    return torch is not None and isinstance(value, torch.nn.Module)


Key = tuple[str, str, str]  # (module path, "attribute" | "buffer" | "parameter", name)


@dataclass(frozen=True)
class _TensorState:
    """A tensor by identity and version: a new object or an in-place write both show."""

    ident: int
    version: int | None  # None for inference tensors, which keep no version counter
    shape: tuple[int, ...]
    dtype: str
    values: tuple | None  # small tensors only, for the message

    @classmethod
    def of(cls, tensor: Any) -> _TensorState:
        try:
            version = tensor._version
        except RuntimeError:
            version = None
        small = tensor.numel() <= _SMALL_TENSOR
        values = None
        if small:
            values = tuple(
                float(f"{v:.4g}") if isinstance(v, float) else v
                for v in tensor.detach().cpu().flatten().tolist()
            )
        return cls(id(tensor), version, tuple(tensor.shape), str(tensor.dtype), values)

    def describe(self) -> str:
        if self.values is not None and len(self.values) == 1:
            return repr(self.values[0])
        if self.values is not None:
            return f"tensor {list(self.values)}"
        return f"tensor of shape {self.shape}"


@dataclass(frozen=True)
class _ArrayState:
    array: np.ndarray

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ArrayState) and np.array_equal(
            self.array, other.array, equal_nan=self.array.dtype.kind in "fc"
        )

    def __hash__(self) -> int:
        return hash(self.array.shape)


@dataclass(frozen=True)
class _Opaque:
    """An object snapshot: its identity, and its own attributes a level down."""

    type_name: str
    ident: int
    fields: tuple | None


_NAN = ("float", "nan")  # so that nan == nan between snapshots


def _freeze(value: object, depth: int = _DEPTH) -> object:
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return value
    if isinstance(value, float):
        return _NAN if math.isnan(value) else value
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return _TensorState.of(value)
    if isinstance(value, np.ndarray):
        return _ArrayState(value.copy()) if value.size <= 10_000 else ("array", id(value))
    if isinstance(value, (list, tuple)):
        if len(value) > _MAX_ITEMS or depth == 0:
            return (type(value).__name__, "len", len(value), id(value))
        return (type(value).__name__, tuple(_freeze(v, depth - 1) for v in value))
    if isinstance(value, dict):
        if len(value) > _MAX_ITEMS or depth == 0:
            return ("dict", "len", len(value), id(value))
        return ("dict", tuple((repr(k), _freeze(v, depth - 1)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, "len", len(value), id(value))
    fields = None
    own = getattr(value, "__dict__", None)
    if depth > 0 and isinstance(own, dict) and len(own) <= _MAX_ITEMS:
        fields = tuple((k, _freeze(v, depth - 1)) for k, v in own.items() if not callable(v))
    return _Opaque(type(value).__name__, id(value), fields)


def _describe(frozen: object) -> str:
    if isinstance(frozen, _TensorState):
        return frozen.describe()
    if isinstance(frozen, _ArrayState):
        return f"array of shape {frozen.array.shape}"
    if isinstance(frozen, _Opaque):
        return f"a {frozen.type_name}"
    if frozen == _NAN:
        return "nan"
    if isinstance(frozen, tuple) and frozen and frozen[0] in ("list", "tuple", "dict", "set"):
        size = frozen[2] if len(frozen) > 2 and frozen[1] == "len" else len(frozen[1])
        return f"a {frozen[0]} of {size} items"
    text = repr(frozen)
    return text if len(text) <= 60 else text[:57] + "..."


def _module_type(module: Any) -> str:
    return getattr(module, "original_name", None) or type(module).__name__


def _script_attributes(module: Any) -> list[tuple[str, object]]:
    """A TorchScript module's own attributes, which live in C++, not in its `__dict__`."""
    torch = _torch()
    try:
        named = torch._C._jit_debug_module_iterators(module._c)["named_attributes"]  # type: ignore[union-attr]
    except (AttributeError, KeyError, RuntimeError):  # a private API: degrade to nothing
        return []
    skip = {*module._modules.keys(), *module._parameters.keys(), *module._buffers.keys()}
    skip |= _SCRIPT_HIDDEN_ATTRIBUTES
    return [(name, value) for name, value in named if name not in skip]


def _python_attributes(module: Any) -> list[tuple[str, object]]:
    torch = _torch()
    assert torch is not None
    skip = _module_keys()
    if isinstance(module, torch.jit.ScriptModule):
        skip = skip | _SCRIPT_KEYS
    if isinstance(module, torch.fx.GraphModule):
        skip = skip | _graph_keys()
    return [(k, v) for k, v in vars(module).items() if k not in skip and not callable(v)]


State = dict[Key, tuple[str, object]]


def _module_snapshot(module: Any, prefix: str = "") -> State:
    torch = _torch()
    assert torch is not None
    state: State = {}
    for sub_path, sub in module.named_modules():
        path = ".".join(p for p in (prefix, sub_path) if p)
        kind = _module_type(sub)
        attributes = _python_attributes(sub)
        if isinstance(sub, torch.jit.ScriptModule):
            attributes += _script_attributes(sub)
        for name, value in attributes:
            state[(path, "attribute", name)] = (kind, _freeze(value))
        for name, buf in sub.named_buffers(recurse=False):
            state[(path, "buffer", name)] = (kind, _TensorState.of(buf))
        for name, param in sub.named_parameters(recurse=False):
            state[(path, "parameter", name)] = (kind, _TensorState.of(param))
    return state


def snapshot(root: object) -> State:
    """key -> (owner type, frozen value) for everything a call of `root` could write: a
    torch module's submodules' attributes, buffers and parameters; any other object's
    own attributes, with the torch modules among them walked under their names."""
    if is_torch_module(root):
        return _module_snapshot(root)
    state: State = {}
    kind = type(root).__name__
    own = getattr(root, "__dict__", None)
    for name, value in (own or {}).items():
        if is_torch_module(value):
            state.update(_module_snapshot(value, prefix=name))
        elif not callable(value):
            state[("", "attribute", name)] = (kind, _freeze(value))
    return state


@dataclass(frozen=True)
class StateChange:
    """One piece of module state that a call wrote."""

    module_path: str  # "" for the root module
    module_type: str
    kind: str  # "attribute", "buffer" or "parameter"
    name: str
    how: str  # "changed", "added", "deleted", "written in place", "replaced"
    before: str | None
    after: str | None
    #: What the call is ("forward", "predict") and what the root is called in sentences.
    call: str = "forward"
    root: str = "the root module"

    @property
    def key(self) -> Key:
        return (self.module_path, self.kind, self.name)

    @property
    def subject(self) -> str:
        where = f"module '{self.module_path}'" if self.module_path else self.root
        return f"{self.module_type}.{self.name} ({self.kind} of {where})"

    def clause(self) -> str:
        if self.how == "changed":
            return f"changed from {self.before} to {self.after}"
        if self.how == "added":
            return f"was added (set to {self.after})"
        if self.how == "deleted":
            return f"was deleted (it was {self.before})"
        if self.how == "written in place" and self.before != self.after:
            return f"was written in place, from {self.before} to {self.after}"
        return f"was {self.how}"

    def sentence(self, then: StateChange | None = None) -> str:
        text = f"{self.subject} {self.clause()} during {self.call}"
        if then is not None:
            text += f", and {then.clause()} on the next call"
        return text + "."


def diff(
    before: State, after: State, *, call: str = "forward", root: str = "the root module"
) -> list[StateChange]:
    """The state one call (`call`, in sentences) changed, in module order; `root` names
    the snapshot's root object where a change is its own."""
    changes: list[StateChange] = []
    for key in list(before) + [k for k in after if k not in before]:
        path, kind, name = key
        old, new = before.get(key), after.get(key)
        if old is not None and new is not None and old[1] == new[1]:
            continue
        module_type = (new or old)[0]  # type: ignore[index]
        if old is None:
            how, was, now = "added", None, _describe(new[1])  # type: ignore[index]
        elif new is None:
            how, was, now = "deleted", _describe(old[1]), None
        else:
            was, now = _describe(old[1]), _describe(new[1])
            how = "changed"
            if isinstance(old[1], _TensorState) and isinstance(new[1], _TensorState):
                how = "written in place" if old[1].ident == new[1].ident else "replaced"
                if how == "replaced" and old[1].values is None:
                    how = "replaced by a new tensor"
        changes.append(StateChange(path, module_type, kind, name, how, was, now, call, root))
    return changes
