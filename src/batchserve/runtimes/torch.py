"""PyTorch: TorchScript, `torch.export` programs, and a module class with safetensors weights.

What an artifact is, is read from its content, not its name: a TorchScript archive
holds `constants.pkl`, an exported program holds `archive_format`, a `.safetensors`
file holds tensors only and needs the module class from model.yaml. Anything else
goes through `torch.load(weights_only=True)`; a pickled whole `nn.Module` can run
arbitrary code when loaded, so it needs the operator's `allow_pickle: true`.

Serving always runs a module in eval mode under `torch.inference_mode()`. Instances
record which modules the artifact left in training mode, so that `batchserve check`
can say what serving switched off. An eager module may mutate itself in `forward`,
so torch instances are not assumed safe to share between threads: the caller sets
`concurrency_safe` from model.yaml, where `batchserve check` writes it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import pickle
import re
import threading
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from batchserve.errors import InferenceError, InvalidInput, ModelLoadError
from batchserve.runtimes.base import ModelInstance, Runtime, RuntimeOptions, TensorSpec

log = logging.getLogger(__name__)

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

_UNKNOWN_SHAPE = (-1,)
# Dropout, AlphaDropout, BatchNorm2d, SyncBatchNorm, LazyInstanceNorm1d... but not "DropoutModel"
_MODE_SENSITIVE_KINDS = re.compile(r"\w*(Dropout|BatchNorm|InstanceNorm)(\d[dD])?")

# torch.set_num_threads is process-wide: setting it per load or per call would make
# instances fight over it, so the first load that asks decides, once.
_threads_lock = threading.Lock()
_threads_set: int | None = None
_threads_warned: set[int] = set()


def configure_threads(intra_op_threads: int | None) -> int | None:
    """Set torch's intra-op thread count once per process; returns the count in force.

    A later request for a different count keeps the first and logs a warning once.
    """
    global _threads_set
    if intra_op_threads is None:
        return _threads_set
    with _threads_lock:
        if _threads_set is None:
            torch.set_num_threads(intra_op_threads)
            _threads_set = intra_op_threads
        elif intra_op_threads != _threads_set and intra_op_threads not in _threads_warned:
            _threads_warned.add(intra_op_threads)
            log.warning(
                "torch intra-op threads are process-wide and already set to %d; "
                "ignoring a request for %d",
                _threads_set,
                intra_op_threads,
            )
        return _threads_set


@dataclass(frozen=True)
class TrainingModeModule:
    """A module (or exported op) that the artifact left in training mode and that computes
    differently there (dropout, batch statistics); serving switched it to eval."""

    path: str  # dotted module path, "" for the root
    kind: str  # class name ("Dropout") or, for an exported op, "aten.dropout"


def choose_device(requested: str) -> torch.device:
    """The device to load on: CUDA when asked for and present, else CPU with a warning."""
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if torch.cuda.is_available():
            return torch.device(requested)
        log.warning("device %r requested but CUDA is not available here; using cpu", requested)
        return torch.device("cpu")
    raise ModelLoadError(f"unknown device {requested!r}; expected 'cpu' or 'cuda'")


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    try:
        return _TORCH_TO_NUMPY[dtype]
    except KeyError:
        raise ModelLoadError(f"tensor dtype {dtype} has no numpy equivalent") from None


def _artifact_kind(path: Path) -> str:
    """'safetensors', 'export', 'torchscript' or 'torch.load', from the file's content."""
    if path.suffix == ".safetensors":
        return "safetensors"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n == "archive_format" or n.endswith("/archive_format") for n in names):
            return "export"
        if any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in names):
            return "torchscript"
    return "torch.load"


def _module_from_class_path(class_path: str | None, kwargs: Mapping[str, object], path: Path):
    if not class_path:
        raise ModelLoadError(
            f"{path}: weights without a module; set `torch: {{module: 'package.module:Class'}}` "
            "in model.yaml"
        )
    module_name, _, attr_path = class_path.partition(":")
    if not module_name or not attr_path:
        raise ModelLoadError(f"torch module {class_path!r}: expected 'package.module:Class'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"torch module {class_path!r} cannot be imported: {exc}") from exc
    try:
        module = target(**dict(kwargs))
    except Exception as exc:  # the user's constructor: any failure is a load failure
        raise ModelLoadError(f"torch module {class_path!r}({dict(kwargs)}) failed: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"torch module {class_path!r} built a {type(module).__name__}")
    return module


def _load_state_dict(module: torch.nn.Module, state: Mapping[str, Any], path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: weights do not fit {type(module).__name__}: {exc}") from exc


def _torch_load(path: Path, options: RuntimeOptions) -> torch.nn.Module:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not options.allow_pickle)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"{path} holds pickled Python objects (a whole nn.Module?), which can run "
            "arbitrary code when loaded; set `allow_pickle: true` in model.yaml only if you "
            f"trust this file, or save a state_dict / TorchScript / torch.export instead ({exc})"
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a loadable torch file: {exc}") from exc
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, Mapping):
        module = _module_from_class_path(options.torch_module, options.torch_kwargs, path)
        _load_state_dict(module, obj, path)
        return module
    raise ModelLoadError(f"{path}: holds a {type(obj).__name__}, not a module or a state_dict")


@functools.cache
def _forward_reads_training(cls: type) -> bool:
    try:
        return "self.training" in inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False


def _mode_sensitive(module: torch.nn.Module) -> bool:
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


def _training_modules(module: torch.nn.Module) -> list[TrainingModeModule]:
    """Modules left in training mode whose output depends on it; a freshly built Linear
    is in training mode too, but computes the same either way, so it is not listed."""
    found = []
    for name, sub in module.named_modules():
        if sub.training and _mode_sensitive(sub):
            kind = getattr(sub, "original_name", None) or type(sub).__name__
            found.append(TrainingModeModule(name, kind))
    return found


def _exported_to_eval(module: torch.fx.GraphModule) -> list[TrainingModeModule]:
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


def _exported_specs(
    program: torch.export.ExportedProgram, declared_outputs: tuple[TensorSpec, ...] | None
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs from the program's signature and fake tensors; symbolic dims -> -1."""

    def spec(name: str, value: object) -> TensorSpec:
        if not isinstance(value, torch.Tensor):
            raise ModelLoadError(f"exported input/output {name!r} is not a tensor")
        shape = tuple(d if isinstance(d, int) else -1 for d in value.shape)
        return TensorSpec(name, _numpy_dtype(value.dtype), shape)

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
        names = _output_names(len(values))
    return inputs, tuple(spec(n, v) for n, v in zip(names, values, strict=True))


def _output_names(count: int) -> list[str]:
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def _forward_argument_names(module: torch.nn.Module) -> list[str]:
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


class TorchInstance(ModelInstance):
    """One PyTorch module in eval mode, run under `torch.inference_mode()`.

    `module` is public because the safety check inspects it; serving never touches it.
    """

    concurrency_safe = False

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        device: torch.device,
        source: str,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
        shapes_known: bool,
        training_modules_at_load: Sequence[TrainingModeModule] = (),
    ) -> None:
        self.module = module
        self.device = device
        #: 'torchscript', 'export', 'safetensors' or 'torch.load'
        self.source = source
        #: False when inputs/outputs are a guess: the artifact does not describe itself and
        #: model.yaml declares nothing, so names come from `forward` and shapes are unknown.
        self.shapes_known = shapes_known
        #: Modules the artifact left in training mode; serving switched them to eval.
        self.training_modules_at_load = tuple(training_modules_at_load)
        self._inputs = inputs
        self._outputs = outputs

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def _to_tensor(self, spec: TensorSpec, array: object) -> torch.Tensor:
        if not isinstance(array, np.ndarray):
            raise InvalidInput(f"input {spec.name!r}: expected a numpy array")
        if array.dtype.kind in "OUS":
            raise InvalidInput(f"input {spec.name!r}: torch models take no string tensors")
        if self.shapes_known:
            if array.dtype != spec.dtype:
                raise InvalidInput(
                    f"input {spec.name!r}: dtype {array.dtype}, expected {spec.dtype}"
                )
            fits = len(array.shape) == len(spec.shape) and all(
                want in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
            )
            if not fits:
                raise InvalidInput(
                    f"input {spec.name!r}: shape {list(array.shape)}, expected {list(spec.shape)}"
                )
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.array(array, copy=True, order="C")  # torch.from_numpy needs both
        return torch.from_numpy(array).to(self.device)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = [s.name for s in self._inputs]
        missing = [n for n in expected if n not in inputs]
        unknown = [n for n in inputs if n not in expected]
        if missing or unknown:
            raise InvalidInput(f"inputs {sorted(inputs)} given; the model takes {expected}")
        tensors = [self._to_tensor(spec, inputs[spec.name]) for spec in self._inputs]
        try:
            with torch.inference_mode():
                result = self.module(*tensors)
                return self._outputs_to_numpy(result)
        except InferenceError:
            raise
        except Exception as exc:  # the model's own code failed on this input
            raise InferenceError(f"torch model failed: {type(exc).__name__}: {exc}") from exc

    def _outputs_to_numpy(self, result: object) -> dict[str, np.ndarray]:
        if isinstance(result, torch.Tensor):
            pairs = [(self._outputs[0].name if self._outputs else "output", result)]
        elif isinstance(result, Mapping):
            pairs = [(str(k), v) for k, v in result.items()]
        elif isinstance(result, (tuple, list)):
            names = [o.name for o in self._outputs]
            if len(names) != len(result):
                names = _output_names(len(result))
            pairs = list(zip(names, result, strict=True))
        else:
            raise InferenceError(f"torch model returned a {type(result).__name__}, not tensors")
        out = {}
        for name, value in pairs:
            if not isinstance(value, torch.Tensor):
                raise InferenceError(f"output {name!r} is a {type(value).__name__}, not a tensor")
            out[name] = value.detach().cpu().numpy()
        return out

    def close(self) -> None:
        self.module = None  # type: ignore[assignment]


class TorchRuntime(Runtime):
    """Loads TorchScript, `torch.export` and module-plus-weights artifacts into instances."""

    name = "torch"

    def load(self, path: Path, options: RuntimeOptions) -> TorchInstance:
        configure_threads(options.intra_op_threads)
        device = choose_device(options.device)
        source = _artifact_kind(path)
        program = None
        if source == "export":
            try:
                program = torch.export.load(str(path))
            except Exception as exc:
                raise ModelLoadError(f"{path}: not a loadable torch.export program: {exc}") from exc
            module = program.module()
            training = _exported_to_eval(module)
        else:
            if source == "torchscript":
                try:
                    module = torch.jit.load(str(path), map_location="cpu")
                except Exception as exc:
                    raise ModelLoadError(f"{path}: not a loadable TorchScript file: {exc}") from exc
            elif source == "safetensors":
                module = self._load_safetensors(path, options)
            else:
                module = _torch_load(path, options)
            training = _training_modules(module)
            module.eval()
        if training:
            log.info(
                "%s: switched %d module(s) left in training mode to eval: %s",
                path,
                len(training),
                ", ".join(f"{t.kind} '{t.path}'" for t in training[:5]),
            )
        module.to(device)

        shapes_known = True
        if program is not None:
            inputs, outputs = _exported_specs(program, options.outputs)
        elif options.inputs:
            inputs = options.inputs
            outputs = options.outputs or (TensorSpec("output", np.dtype(np.float32), (-1,)),)
        else:
            shapes_known = False
            names = _forward_argument_names(module) or ["input"]
            inputs = tuple(TensorSpec(n, np.dtype(np.float32), _UNKNOWN_SHAPE) for n in names)
            outputs = options.outputs or (TensorSpec("output", np.dtype(np.float32), (-1,)),)
            log.warning(
                "%s does not describe its inputs' shapes; declare `inputs:` in model.yaml",
                path,
            )
        return TorchInstance(
            module,
            device=device,
            source=source,
            inputs=inputs,
            outputs=outputs,
            shapes_known=shapes_known,
            training_modules_at_load=training,
        )

    @staticmethod
    def _load_safetensors(path: Path, options: RuntimeOptions) -> torch.nn.Module:
        try:
            from safetensors.torch import load_file
        except ImportError as exc:
            raise ModelLoadError("safetensors weights need: pip install safetensors") from exc
        module = _module_from_class_path(options.torch_module, options.torch_kwargs, path)
        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:
            raise ModelLoadError(f"{path}: not a loadable safetensors file: {exc}") from exc
        _load_state_dict(module, state, path)
        return module
