"""PyTorch: TorchScript, `torch.export` programs, and a module class with safetensors weights.

What an artifact is, is read from its content (`artifacts`). Serving always runs a
module in eval mode under `torch.inference_mode()`. Instances record which modules
the artifact left in training mode (`training`), so that `batchserve check` can say
what serving switched off. An eager module may mutate itself in `forward`, so torch
instances are not assumed safe to share between threads: model.yaml's
`concurrency_safe`, which `batchserve check --write` sets, decides.

model.yaml `options:` (or a `torch:` section): `module: 'package.module:Class'` and
`kwargs` rebuild the module that safetensors weights or a state_dict belong to.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from batchserve.datatypes import TensorSpec
from batchserve.errors import InferenceError, InvalidInput, ModelLoadError
from batchserve.runtimes.base import ModelInstance, ProcessThreads, Runtime, RuntimeOptions
from batchserve.runtimes.torch.artifacts import artifact_kind, load_safetensors, torch_load
from batchserve.runtimes.torch.signature import (
    exported_specs,
    forward_argument_names,
    output_names,
)
from batchserve.runtimes.torch.training import (
    TrainingModeModule,
    exported_to_eval,
    training_modules,
)

log = logging.getLogger(__name__)

_UNKNOWN_SHAPE = (-1,)


class TorchOptions(BaseModel):
    """model.yaml `options:` for backend torch."""

    model_config = ConfigDict(extra="forbid")

    module: str | None = Field(None, description="'package.module:ClassName' for safetensors")
    kwargs: dict[str, object] = Field(default_factory=dict)


#: torch.set_num_threads is process-wide: the first load that asks decides, once.
process_threads = ProcessThreads("torch", torch.set_num_threads, log)


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
        self.inputs = inputs
        self.outputs = outputs

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
            if not spec.accepts(array.shape):
                raise InvalidInput(
                    f"input {spec.name!r}: shape {list(array.shape)}, expected {list(spec.shape)}"
                )
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.array(array, copy=True, order="C")  # torch.from_numpy needs both
        return torch.from_numpy(array).to(self.device)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = [s.name for s in self.inputs]
        missing = [n for n in expected if n not in inputs]
        unknown = [n for n in inputs if n not in expected]
        if missing or unknown:
            raise InvalidInput(f"inputs {sorted(inputs)} given; the model takes {expected}")
        tensors = [self._to_tensor(spec, inputs[spec.name]) for spec in self.inputs]
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
            pairs = [(self.outputs[0].name if self.outputs else "output", result)]
        elif isinstance(result, Mapping):
            pairs = [(str(k), v) for k, v in result.items()]
        elif isinstance(result, (tuple, list)):
            names = [o.name for o in self.outputs]
            if len(names) != len(result):
                names = output_names(len(result))
            pairs = list(zip(names, result, strict=True))
        else:
            raise InferenceError(f"torch model returned a {type(result).__name__}, not tensors")
        out = {}
        for name, value in pairs:
            if not isinstance(value, torch.Tensor):
                raise InferenceError(f"output {name!r} is a {type(value).__name__}, not a tensor")
            out[name] = value.detach().cpu().numpy()
        return out

    def python_state(self) -> torch.nn.Module:
        return self.module

    def close(self) -> None:
        self.module = None  # type: ignore[assignment]


class TorchRuntime(Runtime):
    """Loads TorchScript, `torch.export` and module-plus-weights artifacts into instances."""

    name = "torch"
    platform = "pytorch_libtorch"
    default_artifact = "model.pt"
    suffixes = (".pt", ".pt2", ".pth", ".bin", ".ts", ".safetensors")
    threads_per_process = True
    shared_by_default = False
    Options = TorchOptions

    def load(self, path: Path, options: RuntimeOptions) -> TorchInstance:
        own: TorchOptions = self.options_of(options)
        process_threads.configure(options.intra_op_threads)
        device = choose_device(options.device)
        source = artifact_kind(path)
        program = None
        if source == "export":
            try:
                program = torch.export.load(str(path))
            except Exception as exc:
                raise ModelLoadError(f"{path}: not a loadable torch.export program: {exc}") from exc
            module = program.module()
            training = exported_to_eval(module)
        else:
            if source == "torchscript":
                try:
                    module = torch.jit.load(str(path), map_location="cpu")
                except Exception as exc:
                    raise ModelLoadError(f"{path}: not a loadable TorchScript file: {exc}") from exc
            elif source == "safetensors":
                module = load_safetensors(path, own.module, own.kwargs)
            else:
                module = torch_load(
                    path, allow_pickle=options.allow_pickle, module=own.module, kwargs=own.kwargs
                )
            training = training_modules(module)
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
            inputs, outputs = exported_specs(program, options.outputs)
        elif options.inputs:
            inputs = options.inputs
            outputs = options.outputs or (TensorSpec("output", np.dtype(np.float32), (-1,)),)
        else:
            shapes_known = False
            names = forward_argument_names(module) or ["input"]
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
