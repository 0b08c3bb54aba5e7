"""Python models: a model author's own class, in the model's folder, behind the runtime
interface.

model.yaml names the class and must allow its code to run:

    backend: python
    allow_code: true
    python: {class: "model:Detector", options: {threshold: 0.5}}

`model:Detector` is the class `Detector` in `model.py` beside model.yaml (`pkg.mod:Cls`
is `pkg/mod.py`). The class, all of it optional but `predict`:

    class Detector:
        inputs = [{"name": "image", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]
        outputs = [...]                     # for describe() and v2 metadata
        concurrency_safe = False            # may one object serve many threads at once?
        takes_images = False                # decode gets image bytes from any envelope
        def load(self, version_dir, options): ...   # once, after Detector()
        def predict(self, inputs: list) -> list: ...  # one result per input, in order
        def decode(self, body: bytes, content_type: str): ...  # /v1 body -> one input
        def encode(self, output): ...       # one result -> JSON-able
        def example(self, seed: int): ...   # one made-up input: warm-up, `batchserve check`

An input is what `decode` returns for a /v1 request, or on v2 `infer` a dict of
numpy arrays (each with its own batch dimension, read-only); a result for v2 must
be a dict of arrays. The scheduler batches work-conservingly: `predict` gets a list
of one when nothing else waits.

Nothing of the model's code runs unless model.yaml says `allow_code: true`: the
refusal comes before the file is read. Each instance imports the file afresh under a
name of its own (so two models' `model.py`, or two versions of one, never meet in
`sys.modules`), without writing bytecode into the model's folder, and removes it
again on close.
"""

from __future__ import annotations

import itertools
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from batchserve.config import TensorConfig
from batchserve.datatypes import TensorSpec, numpy_dtype
from batchserve.errors import BatchserveError, InferenceError, ModelLoadError
from batchserve.runtimes.base import CustomFormat, ModelInstance, Runtime, RuntimeOptions

log = logging.getLogger(__name__)

_TARGET = re.compile(r"^(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<cls>[A-Za-z_]\w*)$")
_module_numbers = itertools.count()


class PythonOptions(BaseModel):
    """model.yaml `python:` (or `options:`) for backend python."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class_: str = Field(
        alias="class",
        pattern=_TARGET.pattern,
        description="'module:Class', the module a file in the model's folder ('model' is model.py)",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="handed to the class's load(version_dir, options)"
    )


def _specs(declared: object, where: str) -> tuple[TensorSpec, ...] | None:
    """A class's `inputs`/`outputs` attribute (TensorSpecs, or dicts as in model.yaml)."""
    if declared is None:
        return None
    if not isinstance(declared, Sequence) or isinstance(declared, str):
        raise ModelLoadError(f"{where} must be a list of tensors")
    specs = []
    for item in declared:
        if isinstance(item, TensorSpec):
            specs.append(item)
            continue
        try:
            tensor = TensorConfig.model_validate(item)
            specs.append(TensorSpec(tensor.name, numpy_dtype(tensor.datatype), tuple(tensor.shape)))
        except (ValidationError, ValueError) as exc:
            raise ModelLoadError(f"{where}: {item!r} is not a tensor: {exc}") from None
    return tuple(specs)


def _one_declaration(
    from_class: tuple[TensorSpec, ...] | None,
    from_yaml: tuple[TensorSpec, ...] | None,
    what: str,
    class_name: str,
) -> tuple[TensorSpec, ...]:
    if from_class is not None and from_yaml is not None and from_class != from_yaml:
        raise ModelLoadError(
            f"{class_name}.{what} and model.yaml's {what}: differ; declare them in one place"
        )
    return from_class or from_yaml or ()


class PythonInstance(ModelInstance):
    """One object of the model's class. `run` takes a list of inputs, one per request."""

    batch_format = "list"

    def __init__(
        self,
        model: Any,
        module: ModuleType,
        *,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
    ) -> None:
        self._model = model
        self._module = module
        self._name = type(model).__name__
        self.inputs = inputs
        self.outputs = outputs
        self.concurrency_safe = bool(getattr(model, "concurrency_safe", False))

    def run(self, inputs: list[Any]) -> list[Any]:
        try:
            results = self._model.predict(list(inputs))
        except BatchserveError:
            raise
        except Exception as exc:  # the model's own code failed on this batch
            raise InferenceError(f"{self._name}.predict: {type(exc).__name__}: {exc}") from exc
        if not isinstance(results, (list, tuple)):
            raise InferenceError(
                f"{self._name}.predict broke its contract: it returned a "
                f"{type(results).__name__}, not a list with one result per input"
            )
        if len(results) != len(inputs):
            raise InferenceError(
                f"{self._name}.predict broke its contract: it returned {len(results)} "
                f"results for {len(inputs)} inputs"
            )
        return list(results)

    def custom_format(self) -> CustomFormat:
        return CustomFormat(
            decode=getattr(self._model, "decode", None),
            encode=getattr(self._model, "encode", None),
            takes_images=bool(getattr(self._model, "takes_images", False)),
        )

    def example_request(self, seed: int) -> Any | None:
        example = getattr(self._model, "example", None)
        if example is None:
            return None
        try:
            return example(seed)
        except Exception as exc:
            raise ModelLoadError(f"{self._name}.example: {type(exc).__name__}: {exc}") from exc

    def python_state(self) -> object:
        return self._model

    def close(self) -> None:
        sys.modules.pop(self._module.__name__, None)
        self._model = None


class PythonRuntime(Runtime):
    """Runs a model author's class from the model's folder (see the module docstring)."""

    name = "python"
    platform = "python"
    #: The version folder itself: the class's `load` reads what it needs from it.
    default_artifact = "."
    threads_per_process = True  # the model's own code decides its threads
    shared_by_default = False
    Options = PythonOptions

    def load(self, path: Path, options: RuntimeOptions) -> PythonInstance:
        own: PythonOptions = self.options_of(options)
        if options.model_dir is None:
            raise ModelLoadError("backend python needs a model folder holding the model's code")
        match = _TARGET.match(own.class_)
        assert match is not None  # the option's pattern checked it
        file = options.model_dir.joinpath(*match["module"].split(".")).with_suffix(".py")
        if not options.allow_code:
            raise ModelLoadError(
                f"{options.model_dir / 'model.yaml'}: backend python runs the model's own code "
                f"({file.name}), which is refused unless model.yaml sets `allow_code: true` "
                "(only for code you trust)"
            )
        if not file.is_file():
            raise ModelLoadError(f"python.class {own.class_!r}: {file} does not exist")
        module = _import_file(file, options.model_dir.name)
        try:
            instance = _instantiate(module, match["cls"], path, own, options)
        except BaseException:
            sys.modules.pop(module.__name__, None)
            raise
        return instance


def _import_file(file: Path, label: str) -> ModuleType:
    """Run `file` as a module of a name no other model or version uses."""
    safe_label = re.sub(r"\W", "_", label)
    name = f"_batchserve_model_{next(_module_numbers)}_{safe_label}"
    module = ModuleType(name)
    module.__file__ = str(file)
    # A class's module must be findable while it is defined (dataclasses, typing, pickle).
    sys.modules[name] = module
    try:
        code = compile(file.read_bytes(), str(file), "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise ModelLoadError(f"{file}: importing it failed: {type(exc).__name__}: {exc}") from exc
    return module


def _instantiate(
    module: ModuleType, class_name: str, path: Path, own: PythonOptions, options: RuntimeOptions
) -> PythonInstance:
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ModelLoadError(f"{module.__file__} defines no class {class_name!r}")
    if not callable(getattr(cls, "predict", None)):
        raise ModelLoadError(f"{class_name} has no predict(inputs) method")
    version_dir = path if path.is_dir() else path.parent
    try:
        model = cls()
        load = getattr(model, "load", None)
        if load is not None:
            load(version_dir, dict(own.options))
    except Exception as exc:
        raise ModelLoadError(f"{class_name}: loading failed: {type(exc).__name__}: {exc}") from exc
    inputs = _one_declaration(
        _specs(getattr(model, "inputs", None), f"{class_name}.inputs"),
        options.inputs,
        "inputs",
        class_name,
    )
    outputs = _one_declaration(
        _specs(getattr(model, "outputs", None), f"{class_name}.outputs"),
        options.outputs,
        "outputs",
        class_name,
    )
    return PythonInstance(model, module, inputs=inputs, outputs=outputs)
