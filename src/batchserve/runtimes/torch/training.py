"""Which modules an artifact left in training mode, and switching them to eval.

Only modules that compute differently in training mode are reported (dropout,
batch statistics, a `forward` that reads `self.training`): a freshly built Linear
is in training mode too, but computes the same either way.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass

import torch

# Dropout, AlphaDropout, BatchNorm2d, SyncBatchNorm, LazyInstanceNorm1d... but not "DropoutModel"
_MODE_SENSITIVE_KINDS = re.compile(r"\w*(Dropout|BatchNorm|InstanceNorm)(\d[dD])?")


@dataclass(frozen=True)
class TrainingModeModule:
    """A module (or exported op) that the artifact left in training mode and that computes
    differently there (dropout, batch statistics); serving switched it to eval."""

    path: str  # dotted module path, "" for the root
    kind: str  # class name ("Dropout") or, for an exported op, "aten.dropout"


@functools.cache
def _forward_reads_training(cls: type) -> bool:
    try:
        return "self.training" in inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False


def mode_sensitive(module: torch.nn.Module) -> bool:
    """Whether a module computes differently in training mode (dropout, batch statistics...)."""
    kind = getattr(module, "original_name", None) or type(module).__name__
    if _MODE_SENSITIVE_KINDS.fullmatch(kind):
        return True
    if isinstance(module, torch.jit.ScriptModule):
        try:
            return "self.training" in module.code
        except RuntimeError:  # a module without a scripted forward
            return False
    return _forward_reads_training(type(module))


def training_modules(module: torch.nn.Module) -> list[TrainingModeModule]:
    """Modules left in training mode whose output depends on it; a freshly built Linear
    is in training mode too, but computes the same either way, so it is not listed."""
    found = []
    for name, sub in module.named_modules():
        if sub.training and mode_sensitive(sub):
            kind = getattr(sub, "original_name", None) or type(sub).__name__
            found.append(TrainingModeModule(name, kind))
    return found


def exported_to_eval(module: torch.fx.GraphModule) -> list[TrainingModeModule]:
    """Turn an exported graph's training-mode ops (dropout, batch norm) into eval ones.

    An exported program bakes the mode into its ops and refuses `eval()`; flipping
    the ops' `train`/`training` argument is what `eval()` would have done.
    """
    found = []
    for node in module.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op != "call_function" or schema is None:
            continue
        for index, arg in enumerate(schema.arguments):
            if arg.name not in ("train", "training"):
                continue
            if index < len(node.args) and node.args[index] is True:
                node.update_arg(index, False)
            elif node.kwargs.get(arg.name) is True:
                node.update_kwarg(arg.name, False)
            else:
                continue
            stack = list((node.meta.get("nn_module_stack") or {}).values())
            path, cls = stack[-1] if stack else (node.name, "")
            kind = (cls if isinstance(cls, str) else cls.__name__).rsplit(".", 1)[-1]
            found.append(TrainingModeModule(path, kind or str(node.target)))
    if found:
        module.recompile()
    return found
