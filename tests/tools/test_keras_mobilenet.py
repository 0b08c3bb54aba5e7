"""tools/build_keras_mobilenet.py (run by `make tf-models`) wrote the seed's model three ways:
a repository of three model folders whose model.yaml the server accepts, and artifacts
that are the seeded Keras model itself, not just something of the same shape."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from batchserve.config import load_model_config
from tests import tf_builders
from tests.live_server import PROJECT_ROOT
from tests.tf_builders import CLASSES, PROBABILITIES, TF_REPOSITORY, images

sys.path.insert(0, str(PROJECT_ROOT / "tools"))
import build_keras_mobilenet as builder

EXPECTED = {
    "mobilenet_savedmodel": ("tensorflow", "model.savedmodel"),
    "mobilenet_keras": ("tensorflow", "model.keras"),
    "mobilenet_tflite": ("tflite", "model.tflite"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_model_folder_has_its_backend_preprocessing_and_labels(name):
    folder = TF_REPOSITORY / name
    config = load_model_config(folder / "model.yaml")
    assert (config.name, config.backend, config.artifact) == (name, *EXPECTED[name])
    assert (folder / "1" / EXPECTED[name][1]).exists()
    prep = config.preprocessing
    assert prep is not None and prep.layout == "NHWC" and prep.size == (224, 224)
    # MobileNet's own preprocess_input: x / 127.5 - 1 == (x / 255 - 0.5) / 0.5.
    assert prep.mean == (0.5, 0.5, 0.5) and prep.std == (0.5, 0.5, 0.5)
    assert config.classification.activation == "none"
    labels = (folder / "labels.txt").read_text().splitlines()
    assert labels == [f"class_{i:02d}" for i in range(CLASSES)]


def test_no_partial_build_is_left_behind():
    assert sorted(p.name for p in TF_REPOSITORY.iterdir()) == sorted(EXPECTED)


def test_the_artifacts_are_the_seeded_model_rebuilt_here():
    model = builder.build_model(CLASSES, builder.SEED)
    assert model.count_params() == 3_259_614  # MobileNet v1 1.0 trunk + a 30-class head
    batch = images(2, seed=21)
    rebuilt = np.asarray(model(batch, training=False))
    np.testing.assert_allclose(
        rebuilt, tf_builders.reference_probabilities(batch), rtol=1e-5, atol=1e-7
    )
    assert rebuilt.shape == (2, CLASSES)
    np.testing.assert_allclose(rebuilt.sum(axis=1), 1.0, rtol=1e-5)  # a softmax head
    assert PROBABILITIES == builder.OUTPUT_NAME
