"""Build the seed's model: Keras MobileNet v1 (α 1.0, 224) with a new 30-class head, random
weights, as a SavedModel directory, a Keras 3 `.keras` file and a float32 `.tflite` file.

Usage (``make tf-models``; needs the tf extra)::

    python tools/build_keras_mobilenet.py --out models-tf [--classes 30] [--seed 0]

Writes a model repository of three models, one per artifact, each with its
``model.yaml`` (the /v1 predict preprocessing MobileNet expects: NHWC, ``x / 127.5 - 1``)
and ``labels.txt``::

    OUT/mobilenet_savedmodel/1/model.savedmodel/   backend tensorflow
    OUT/mobilenet_keras/1/model.keras              backend tensorflow
    OUT/mobilenet_tflite/1/model.tflite            backend tflite (written last)

Every artifact has one input ``image`` (float32 [-1, 224, 224, 3]) and one output
``probabilities`` (float32 [-1, classes], a softmax). Nothing is downloaded and nothing
is trained (tests compare the artifacts with each other, not with labels): the
weights are random with a fixed seed, so every build gives the same numbers (and the
same SavedModel variables and .tflite bytes). It takes about 20 s on 2 cores,
importing TensorFlow included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Before the first `import tensorflow` / `import keras` (see runtimes/tensorflow.py).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras
import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parent.parent
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
SIZE = 224
CLASSES = 30
SEED = 0

MODEL_YAML = """\
# Written by tools/build_keras_mobilenet.py: Keras MobileNet v1 with random weights.
name: {name}
backend: {backend}
artifact: {artifact}
labels: labels.txt
preprocessing:
  size: [{size}, {size}]
  resize: shorter_side_center_crop
  resize_ratio: 0.875
  # keras.applications.mobilenet.preprocess_input: x / 127.5 - 1, channels last.
  mean: [0.5, 0.5, 0.5]
  std: [0.5, 0.5, 0.5]
  channel_order: RGB
  layout: NHWC
classification:
  activation: none   # the head is a softmax already
"""

#: model folder -> (backend, artifact), in the order they are written; the last is make's target.
MODELS = {
    "mobilenet_savedmodel": ("tensorflow", "model.savedmodel"),
    "mobilenet_keras": ("tensorflow", "model.keras"),
    "mobilenet_tflite": ("tflite", "model.tflite"),
}


def build_model(classes: int, seed: int) -> keras.Model:
    """The MobileNet v1 trunk (weights=None: nothing is downloaded) and a new softmax head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(SIZE, SIZE, 3), name=INPUT_NAME)
    trunk = keras.applications.MobileNet(
        input_shape=(SIZE, SIZE, 3), alpha=1.0, include_top=False, weights=None, pooling="avg"
    )
    features = trunk(inputs, training=False)
    outputs = keras.layers.Dense(classes, activation="softmax", name=OUTPUT_NAME)(features)
    model = keras.Model(inputs, outputs, name="mobilenet_v1_transfer")
    he_initialise(model, np.random.default_rng(seed))
    return model


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer, nested models opened (the MobileNet trunk is one layer of the model)."""
    found: list[keras.layers.Layer] = []
    for layer in model.layers:
        found.extend(all_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return found


def he_initialise(model: keras.Model, rng: np.random.Generator) -> None:
    """Random weights that keep the activations' scale, as tools/build_benchmark_model.py's.

    Keras' own initialisation (Glorot kernels, identity BatchNorm) shrinks the
    activations to nothing over 27 layers: the softmax is then exactly 1/classes for
    every input, which would hide any difference between the artifacts. He-normal
    kernels and near-identity random BatchNorm statistics make the outputs vary.
    """
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            (kernel,) = layer.get_weights()  # (kh, kw, in, multiplier)
            fan_in = kernel.shape[0] * kernel.shape[1]
            layer.set_weights([rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape)])
        elif isinstance(layer, keras.layers.Conv2D):
            (kernel,) = layer.get_weights()  # (kh, kw, in, out)
            fan_in = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
            layer.set_weights([rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape)])
        elif isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.9, 1.1, channels),  # gamma
                    rng.normal(0.0, 0.05, channels),  # beta
                    rng.normal(0.0, 0.05, channels),  # moving mean
                    rng.uniform(0.9, 1.1, channels),  # moving variance
                ]
            )
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            scale = np.sqrt(1.0 / kernel.shape[0])
            layer.set_weights([rng.normal(0.0, scale, kernel.shape), np.zeros_like(bias)])


class ServingModule(tf.Module):
    """The Keras model's forward pass as one tf.function that tracks only its tf.Variables.

    Not `model.export()` (keras.export.ExportArchive): Keras 3.15 writes every variable
    twice with it (27 MB instead of 13.5 MB) and names the output `output_0`. Not a
    tf.Module holding the Keras model as an attribute either: that saves and serves,
    but TFLiteConverter then leaves the weights out (a 105 KB .tflite that outputs NaN).
    """

    def __init__(self, model: keras.Model) -> None:
        super().__init__()
        self.tf_variables = [variable.value for variable in model.variables]

        def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
            return {OUTPUT_NAME: model(image, training=False)}

        spec = tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name=INPUT_NAME)
        self.serve = tf.function(serve, input_signature=[spec])


def export_saved_model(model: keras.Model, path: Path) -> None:
    """One signature, `serving_default`: input `image`, output `probabilities`, any batch."""
    module = ServingModule(model)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def export_tflite(saved_model: Path, path: Path) -> None:
    """Float32, no quantisation; the batch stays dynamic (-1 in the signature)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    path.write_bytes(converter.convert())


def write_model_folder(folder: Path, backend: str, artifact: str, classes: int) -> None:
    """model.yaml and labels.txt, validated by the server's own parser."""
    text = MODEL_YAML.format(name=folder.name, backend=backend, artifact=artifact, size=SIZE)
    (folder / "model.yaml").write_text(text)
    (folder / "labels.txt").write_text("".join(f"class_{i:02d}\n" for i in range(classes)))
    sys.path.insert(0, str(ROOT / "src"))
    from batchserve.config import load_model_config

    load_model_config(folder / "model.yaml")


def build_repository(out: Path, classes: int, seed: int) -> keras.Model:
    """Build into a scratch folder beside `out`, then move each model into place, the
    .tflite one last: an interrupted build never leaves what make takes for a whole one."""
    model = build_model(classes, seed)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".partial-", dir=out) as scratch:
        staged = Path(scratch)
        for name, (backend, artifact) in MODELS.items():
            (staged / name / "1").mkdir(parents=True)
            write_model_folder(staged / name, backend, artifact, classes)
        versions = {name: staged / name / "1" / artifact for name, (_, artifact) in MODELS.items()}
        export_saved_model(model, versions["mobilenet_savedmodel"])
        model.save(versions["mobilenet_keras"])
        export_tflite(versions["mobilenet_savedmodel"], versions["mobilenet_tflite"])
        for name in MODELS:
            shutil.rmtree(out / name, ignore_errors=True)
            (staged / name).rename(out / name)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models-tf", help="model repository")
    parser.add_argument("--classes", type=int, default=CLASSES)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    model = build_repository(args.out, args.classes, args.seed)
    params = model.count_params()
    print(f"{args.out}: {', '.join(MODELS)}; MobileNet v1 1.0, {params:,} parameters")


if __name__ == "__main__":
    main()
