"""The tensorflow runtime: SavedModel directories and `.keras` files, against TensorFlow run
directly. Uses the seed's MobileNet (`make tf-models`) and tiny models built here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from batchserve.datatypes import TensorSpec
from batchserve.errors import InvalidInput, ModelLoadError
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.runtimes import tensorflow as tf_runtime
from batchserve.runtimes.base import ProcessThreads
from batchserve.runtimes.registry import get_runtime, runtime_for_artifact
from batchserve.runtimes.tensorflow import TensorflowOptions, TensorflowRuntime
from tests import tf_builders
from tests.tf_builders import (
    BAD_BATCHES,
    CLASSES,
    IMAGE,
    KERAS_FILE,
    PROBABILITIES,
    SAVEDMODEL,
    images,
)

F32 = np.dtype(np.float32)


def _load(path: Path, signature: str | None = None, **options: object):
    own = TensorflowOptions(signature=signature) if signature else None
    return load_instance("tensorflow", path, RuntimeOptions(options=own, **options))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def savedmodel():
    return _load(SAVEDMODEL)


@pytest.fixture(scope="module")
def keras_model():
    return _load(KERAS_FILE)


@pytest.fixture(scope="module")
def two_signatures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tf_builders.two_signature_savedmodel(tmp_path_factory.mktemp("tf") / "m.savedmodel")


def test_savedmodel_is_described_from_its_signature_with_a_dynamic_batch(savedmodel):
    assert savedmodel.source == "savedmodel"
    assert savedmodel.describe() == {
        "inputs": [{"name": IMAGE, "datatype": "FP32", "shape": [-1, 224, 224, 3]}],
        "outputs": [{"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, CLASSES]}],
    }
    assert savedmodel.concurrency_safe is True
    runtime = get_runtime("tensorflow")
    assert runtime.platform == "tensorflow_savedmodel" and runtime.threads_per_process


@pytest.mark.parametrize("instance", ["savedmodel", "keras_model"])
def test_outputs_match_tensorflow_run_directly(instance, request):
    batch = images(3, seed=1)
    out = request.getfixturevalue(instance).run({IMAGE: batch})
    want = tf_builders.reference_probabilities(batch)
    assert set(out) == {PROBABILITIES} and out[PROBABILITIES].dtype == F32
    np.testing.assert_allclose(out[PROBABILITIES], want, rtol=1e-5, atol=1e-7)
    # Random weights, but not a constant answer: rows differ, and so do classes within a row.
    assert np.ptp(out[PROBABILITIES], axis=1).min() > 1e-3
    assert np.abs(out[PROBABILITIES][0] - out[PROBABILITIES][1]).max() > 1e-4


def test_keras_file_is_described_by_its_input_and_output_layers(keras_model):
    assert keras_model.source == "keras"
    assert keras_model.inputs == (TensorSpec(IMAGE, F32, (-1, 224, 224, 3)),)
    assert keras_model.outputs == (TensorSpec(PROBABILITIES, F32, (-1, CLASSES)),)


@pytest.mark.parametrize("instance", ["savedmodel", "keras_model"])
@pytest.mark.parametrize("kind", list(BAD_BATCHES))
def test_bad_batches_are_refused_before_tensorflow_sees_them(instance, kind, request):
    model = request.getfixturevalue(instance)
    batch, message = BAD_BATCHES[kind]
    with pytest.raises(InvalidInput, match=message):
        model.run(batch)
    assert model.run({IMAGE: images(1)})[PROBABILITIES].shape == (1, CLASSES)


def test_another_signature_is_served_by_option(two_signatures):
    default = _load(two_signatures)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(default.run({"x": x})["y"], x * 2)
    plus = _load(two_signatures, signature="plus_one")
    assert plus.describe()["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]
    assert plus.describe()["outputs"] == [{"name": "z", "datatype": "FP32", "shape": [-1, 2]}]
    np.testing.assert_array_equal(plus.run({"x": x[:, :2]})["z"], x[:, :2] + 1)


def test_a_missing_signature_is_refused_naming_those_there_are(two_signatures):
    with pytest.raises(ModelLoadError, match=r"no signature 'predict'.*any_rank, plus_one"):
        _load(two_signatures, signature="predict")


def test_a_signature_without_a_fixed_rank_needs_the_inputs_declared(two_signatures):
    with pytest.raises(
        ModelLoadError, match=r"input 'x' has no fixed rank.*declare it under `inputs:`"
    ):
        _load(two_signatures, signature="any_rank")
    declared = (TensorSpec("x", F32, (-1, 3)),)
    instance = _load(two_signatures, signature="any_rank", inputs=declared)
    assert instance.inputs == declared
    assert instance.outputs == (TensorSpec("y", F32, (-1,)),)  # undescribed: one dynamic dim
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(instance.run({"x": x})["y"], x * 3)
    with pytest.raises(InvalidInput, match="expected"):
        instance.run({"x": np.ones((2, 3, 1), np.float32)})


def test_a_keras_lambda_layer_loads_only_when_the_config_allows_code(tmp_path):
    path = tf_builders.lambda_keras_file(tmp_path / "lambda.keras")
    with pytest.raises(ModelLoadError, match=r"set `allow_code: true` in model.yaml"):
        _load(path)
    instance = _load(path, allow_code=True)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(instance.run({"x": x})["y"], x * 3 + 1)


def test_signature_option_is_for_savedmodels_and_bad_artifacts_are_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="applies to SavedModel directories"):
        _load(KERAS_FILE, signature="plus_one")
    (tmp_path / "empty.savedmodel").mkdir()
    with pytest.raises(ModelLoadError, match="not a loadable SavedModel"):
        _load(tmp_path / "empty.savedmodel")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="not a loadable Keras model"):
        _load(tmp_path / "junk.keras")


def test_savedmodel_directories_and_keras_files_are_recognised_as_tensorflow(tmp_path):
    assert isinstance(runtime_for_artifact(SAVEDMODEL), TensorflowRuntime)
    assert isinstance(runtime_for_artifact(KERAS_FILE), TensorflowRuntime)
    assert not TensorflowRuntime.recognises(tmp_path)  # a folder without saved_model.pb


def test_threads_fixed_before_the_first_load_are_a_warning_not_a_failure(caplog):
    tf.constant(1.0).numpy()  # TensorFlow's runtime is initialised from here on
    fresh = ProcessThreads("TensorFlow", tf_runtime._set_threads, tf_runtime.log)
    with caplog.at_level(logging.WARNING, logger="batchserve.runtimes.tensorflow"):
        assert fresh.configure(1) == 1
    assert "fixed before batchserve could set them" in caplog.text
