"""Tiny real TensorFlow, Keras and TFLite models the tests build into a temporary folder,
and the seed's MobileNet repository that `make tf-models` builds (`models-tf`)."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

# As the tensorflow runtime does, before the first import of tensorflow or keras; and
# Keras' settings file (written on import) in a folder of the test run's own, which the
# servers the tests start inherit.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
_KERAS_HOME = tempfile.TemporaryDirectory(prefix="keras-home-")
os.environ["KERAS_HOME"] = _KERAS_HOME.name

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.live_server import PROJECT_ROOT  # noqa: E402

TF_REPOSITORY = PROJECT_ROOT / "models-tf"
SAVEDMODEL = TF_REPOSITORY / "mobilenet_savedmodel" / "1" / "model.savedmodel"
KERAS_FILE = TF_REPOSITORY / "mobilenet_keras" / "1" / "model.keras"
TFLITE_FILE = TF_REPOSITORY / "mobilenet_tflite" / "1" / "model.tflite"
#: The MobileNet artifacts' input and output.
IMAGE, PROBABILITIES = "image", "probabilities"
CLASSES = 30


def images(rows: int, seed: int = 0) -> np.ndarray:
    """A batch of MobileNet inputs as its preprocessing makes them: NHWC in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (rows, 224, 224, 3)).astype(np.float32)


#: Batches a MobileNet instance must refuse, each with what its error says.
BAD_BATCHES: dict[str, tuple[dict[str, object], str]] = {
    # Rank 3 (one image without its batch dimension): aborts the whole process in
    # TensorFlow's oneDNN convolution. If the check before TensorFlow regressed, this test
    # would kill pytest; faulthandler then prints the test's stack.
    "rank 3": ({IMAGE: np.zeros((224, 224, 3), np.float32)}, r"shape \[224, 224, 3\]"),
    "float64": ({IMAGE: np.zeros((1, 224, 224, 3), np.float64)}, "dtype float64"),
    "other size": ({IMAGE: np.zeros((1, 200, 200, 3), np.float32)}, r"\[1, 200, 200, 3\]"),
    "batch 0": ({IMAGE: np.zeros((0, 224, 224, 3), np.float32)}, "is empty"),
    "wrong name": ({"pixels": np.zeros((1, 224, 224, 3), np.float32)}, "the model takes"),
    "extra input": (
        {IMAGE: np.zeros((1, 224, 224, 3), np.float32), "x": np.zeros(1)},
        "the model takes",
    ),
    "not a tensor": ({IMAGE: [[0.0]]}, "expected a tensor"),
}


class TwoSignatures(tf.Module):
    """`serving_default`: y = 2x on [-1, 4]; `plus_one`: z = x + 1 on [-1, 2]; `any_rank`:
    a float input whose rank the signature does not fix."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def double(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": x * 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def plus_one(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"z": x + 1.0}

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="x")])
    def any_rank(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": x * 3.0}


def two_signature_savedmodel(path: Path) -> Path:
    module = TwoSignatures()
    signatures = {
        "serving_default": module.double,
        "plus_one": module.plus_one,
        "any_rank": module.any_rank,
    }
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def lambda_keras_file(path: Path) -> Path:
    """A `.keras` file with a Python Lambda layer (y = 3x + 1 on [-1, 4]): code that Keras
    runs when it loads the file, refused in safe mode."""
    inputs = keras.Input(shape=(4,), name="x")
    outputs = keras.layers.Lambda(lambda t: t * 3.0 + 1.0, name="y")(inputs)
    keras.Model(inputs, outputs).save(path)
    return path


def signatureless_tflite(path: Path) -> Path:
    """A `.tflite` file without signatures (as older converters wrote them): y = relu(x W)
    on [-1, 4] -> [-1, 3], W all ones; served by tensor names ('x', 'Identity')."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def forward(x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(tf.matmul(x, tf.ones([4, 3])))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([forward.get_concrete_function()])
    path.write_bytes(converter.convert())
    return path


@functools.cache
def _reference() -> tuple[object, Callable[..., dict[str, tf.Tensor]]]:
    """The loaded SavedModel (it owns the variables) and its serving signature."""
    loaded = tf.saved_model.load(str(SAVEDMODEL))
    return loaded, loaded.signatures["serving_default"]


def reference_probabilities(batch: np.ndarray) -> np.ndarray:
    """The MobileNet SavedModel run by TensorFlow directly, not through batchserve."""
    _, serve = _reference()
    return serve(image=tf.constant(batch))[PROBABILITIES].numpy()
