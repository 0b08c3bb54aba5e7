"""TensorFlow: SavedModel directories and Keras 3 `.keras` files (the `tf` extra).

A SavedModel is served through one of its signatures (`serving_default` unless
`options.signature` names another); a `.keras` file's forward pass is traced once
into a graph function with the model's own input signature. Either way an instance
is a concrete graph function, which TensorFlow runs from many threads at once, so
instances are shared. A `.keras` file may hold Python code (a `Lambda` layer):
Keras' safe mode refuses it unless model.yaml says `allow_code: true`.

TensorFlow checks its inputs loosely and fails hard: a convolution input of the
wrong rank aborts the whole process under the oneDNN kernels. Every batch is
checked against the signature (`check_batch`) before TensorFlow sees it.

Threads are one setting for the process, fixed before TensorFlow initialises: the
first model loaded decides (`ProcessThreads`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# Before the first `import tensorflow` / `import keras`: fewer C++ log lines, and Keras
# on TensorFlow whatever ~/.keras/keras.json says (unless something imported it first).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np
import tensorflow as tf
from pydantic import BaseModel, ConfigDict, Field

from batchserve.datatypes import TensorSpec, v2_datatype
from batchserve.errors import InferenceError, InvalidInput, ModelLoadError
from batchserve.runtimes.base import (
    ModelInstance,
    ProcessThreads,
    Runtime,
    RuntimeOptions,
    check_batch,
)

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
#: A graph function: the batch's tensors by input name in, its outputs by name out.
GraphCall = Callable[[Mapping[str, np.ndarray]], Mapping[str, tf.Tensor]]


def _set_threads(threads: int) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        # One op at a time within a call, as for ONNX Runtime: calls run side by side.
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as exc:  # something ran a TensorFlow op before the first load
        log.warning("TensorFlow threads were fixed before batchserve could set them: %s", exc)


process_threads = ProcessThreads("TensorFlow", _set_threads, log)


class TensorflowOptions(BaseModel):
    """model.yaml `options:` for backend tensorflow."""

    model_config = ConfigDict(extra="forbid")

    signature: str = Field(DEFAULT_SIGNATURE, description="the SavedModel signature to serve")


def _spec(
    name: str, spec: tf.TensorSpec, declared: Mapping[str, TensorSpec], is_input: bool
) -> TensorSpec:
    """A signature's tensor as batchserve describes it: -1 for each dynamic dimension.

    A tensor of unknown rank is what model.yaml declares; an input must be declared (its
    rank is what keeps a bad batch away from TensorFlow), an output is described as
    torch's undescribed outputs are, one dynamic dimension.
    """
    if spec.shape.rank is None:
        if name in declared:
            return declared[name]
        if is_input:
            raise ModelLoadError(
                f"input {name!r} has no fixed rank in the signature; declare it under "
                "`inputs:` in model.yaml"
            )
        return TensorSpec(name, np.dtype(spec.dtype.as_numpy_dtype), (-1,))
    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    try:
        v2_datatype(dtype)
    except ValueError:
        raise ModelLoadError(f"tensor {name!r} has unsupported type {spec.dtype.name}") from None
    shape = tuple(-1 if d is None else int(d) for d in spec.shape.as_list())
    return TensorSpec(name, dtype, shape)


def _specs(
    signature: Mapping[str, tf.TensorSpec],
    declared: tuple[TensorSpec, ...] | None,
    is_input: bool,
) -> tuple[TensorSpec, ...]:
    by_name = {spec.name: spec for spec in declared or ()}
    return tuple(_spec(name, spec, by_name, is_input) for name, spec in signature.items())


class TensorflowInstance(ModelInstance):
    """One TensorFlow graph function, safe to call from many threads at once."""

    concurrency_safe = True

    def __init__(
        self,
        call: GraphCall,
        *,
        source: str,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
        owner: object = None,
    ) -> None:
        self._call: GraphCall | None = call
        # What owns the function's variables (a loaded SavedModel): the function alone
        # does not keep them alive.
        self._owner = owner
        #: 'savedmodel' or 'keras'
        self.source = source
        self.inputs = inputs
        self.outputs = outputs

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_batch(self.inputs, inputs)
        call = self._call
        if call is None:
            raise InferenceError("the model is closed")
        try:
            result = call(inputs)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as exc:
            raise InvalidInput(f"TensorFlow refused the input: {_first_line(exc)}") from exc
        except Exception as exc:  # the graph failed on this input
            raise InferenceError(f"TensorFlow failed: {_first_line(exc)}") from exc
        return {name: np.asarray(tensor) for name, tensor in result.items()}

    def close(self) -> None:
        self._call = None
        self._owner = None


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def load_saved_model(path: Path, signature: str, options: RuntimeOptions) -> TensorflowInstance:
    """One signature of a SavedModel directory, called with keyword arguments."""
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a loadable SavedModel: {_first_line(exc)}") from exc
    signatures = dict(loaded.signatures)
    if signature not in signatures:
        have = ", ".join(sorted(signatures)) or "none"
        raise ModelLoadError(f"{path}: no signature {signature!r} (it has: {have})")
    function = signatures[signature]
    _, input_signature = function.structured_input_signature
    inputs = _specs(input_signature, options.inputs, is_input=True)
    outputs = _specs(function.structured_outputs, options.outputs, is_input=False)

    def call(batch: Mapping[str, np.ndarray]) -> Mapping[str, tf.Tensor]:
        return function(**batch)

    return TensorflowInstance(
        call, source="savedmodel", inputs=inputs, outputs=outputs, owner=loaded
    )


def load_keras(path: Path, options: RuntimeOptions) -> TensorflowInstance:
    """A `.keras` file, its forward pass traced once into a graph function."""
    import keras

    if keras.config.backend() != "tensorflow":
        raise ModelLoadError(
            f"{path}: Keras was imported with the {keras.config.backend()!r} backend before "
            "the tensorflow runtime; serve .keras files in a process where KERAS_BACKEND is "
            "tensorflow"
        )
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not options.allow_code)
    except ValueError as exc:
        if "safe_mode" in str(exc) and not options.allow_code:
            raise ModelLoadError(
                f"{path} holds Python code (a Lambda layer) that Keras runs when loading; "
                "set `allow_code: true` in model.yaml to trust it"
            ) from exc
        raise ModelLoadError(f"{path}: not a loadable Keras model: {_first_line(exc)}") from exc
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a loadable Keras model: {_first_line(exc)}") from exc
    try:
        model_inputs, model_outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: the model was saved before it was built ({exc})") from exc
    names = [tensor.name for tensor in model_inputs]
    output_names = list(model.output_names)
    signature = [
        tf.TensorSpec(tensor.shape, tensor.dtype, name=name)
        for tensor, name in zip(model_inputs, names, strict=True)
    ]

    def forward(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        result = model(list(tensors) if len(tensors) > 1 else tensors[0], training=False)
        results = result if isinstance(result, (list, tuple)) else [result]
        return dict(zip(output_names, results, strict=True))

    try:
        function = tf.function(forward, input_signature=signature).get_concrete_function()
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: its forward pass does not trace: {_first_line(exc)}"
        ) from exc
    inputs = _specs(dict(zip(names, signature, strict=True)), options.inputs, is_input=True)
    outputs = _specs(
        {
            name: tf.TensorSpec(tensor.shape, tensor.dtype)
            for name, tensor in zip(output_names, model_outputs, strict=True)
        },
        options.outputs,
        is_input=False,
    )

    def call(batch: Mapping[str, np.ndarray]) -> Mapping[str, tf.Tensor]:
        return function(*[batch[name] for name in names])

    return TensorflowInstance(call, source="keras", inputs=inputs, outputs=outputs)


class TensorflowRuntime(Runtime):
    """Loads SavedModel directories and `.keras` files into TensorFlow graph functions."""

    name = "tensorflow"
    platform = "tensorflow_savedmodel"
    #: Triton's name for a SavedModel directory in a version folder.
    default_artifact = "model.savedmodel"
    suffixes = (".keras",)
    threads_per_process = True
    shared_by_default = True
    Options = TensorflowOptions

    @classmethod
    def recognises(cls, path: Path) -> bool:
        """A `.keras` file, or a SavedModel directory (one holding saved_model.pb)."""
        return (path.is_dir() and (path / "saved_model.pb").is_file()) or super().recognises(path)

    def load(self, path: Path, options: RuntimeOptions) -> TensorflowInstance:
        own: TensorflowOptions = self.options_of(options)
        if options.device != "cpu":
            log.warning("device %r requested; tensorflow-cpu runs on the CPU", options.device)
        process_threads.configure(options.intra_op_threads)
        if path.is_dir():
            return load_saved_model(path, own.signature, options)
        if path.suffix.lower() != ".keras":
            raise ModelLoadError(f"{path}: expected a SavedModel directory or a .keras file")
        if own.signature != DEFAULT_SIGNATURE:
            raise ModelLoadError(f"{path}: options.signature applies to SavedModel directories")
        return load_keras(path, options)
