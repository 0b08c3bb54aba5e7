"""The tflite runtime on LiteRT: the seed's MobileNet converted to `.tflite` (`make tf-models`)
agrees with the SavedModel run by TensorFlow within float tolerance, at any batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchserve.config import ModelConfig
from batchserve.errors import ConfigError, InvalidInput, ModelLoadError
from batchserve.repository.loader import load_model_version
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.runtimes.registry import get_runtime, runtime_for_artifact
from batchserve.runtimes.tflite import TfliteOptions, TfliteRuntime
from tests import tf_builders
from tests.tf_builders import BAD_BATCHES, CLASSES, IMAGE, PROBABILITIES, TFLITE_FILE, images

#: LiteRT's XNNPACK kernels against TensorFlow's, on probabilities around 0.03: measured
#: differences are 1e-8 to 2e-8.
ATOL = 1e-5


def _load(path: Path, signature: str | None = None, threads: int | None = 1):
    options = RuntimeOptions(intra_op_threads=threads, options=TfliteOptions(signature=signature))
    return load_instance("tflite", path, options)


@pytest.fixture(scope="module")
def tflite():
    return _load(TFLITE_FILE)


def test_described_from_its_signature_with_the_dynamic_batch_of_shape_signature(tflite):
    assert tflite.signature == "serving_default"
    assert tflite.describe() == {
        "inputs": [{"name": IMAGE, "datatype": "FP32", "shape": [-1, 224, 224, 3]}],
        "outputs": [{"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, CLASSES]}],
    }
    runtime = get_runtime("tflite")
    assert runtime.platform == "tensorflow_lite"
    assert not runtime.threads_per_process and not runtime.shared_by_default
    # One interpreter is not safe from two threads: every worker gets its own.
    assert tflite.concurrency_safe is False


def test_batches_of_any_size_agree_with_tensorflow_within_float_tolerance(tflite):
    for rows, seed in [(1, 1), (3, 2), (1, 3), (3, 4)]:  # each size once resized, then reused
        batch = images(rows, seed)
        out = tflite.run({IMAGE: batch})[PROBABILITIES]
        assert out.shape == (rows, CLASSES)
        np.testing.assert_allclose(
            out, tf_builders.reference_probabilities(batch), rtol=0, atol=ATOL
        )


def test_results_are_copies_that_the_next_call_leaves_alone(tflite):
    first = tflite.run({IMAGE: images(1, seed=5)})[PROBABILITIES]
    kept = first.copy()
    tflite.run({IMAGE: images(1, seed=6)})
    np.testing.assert_array_equal(first, kept)


def test_two_threads_give_the_same_answer_as_one(tmp_path):
    two = _load(TFLITE_FILE, threads=2)
    batch = images(2, seed=7)
    np.testing.assert_allclose(
        two.run({IMAGE: batch})[PROBABILITIES],
        _load(TFLITE_FILE, threads=1).run({IMAGE: batch})[PROBABILITIES],
        rtol=0,
        atol=ATOL,
    )


@pytest.mark.parametrize("kind", list(BAD_BATCHES))
def test_bad_batches_are_refused_and_the_interpreter_keeps_working(tflite, kind):
    batch, message = BAD_BATCHES[kind]
    with pytest.raises(InvalidInput, match=message):
        tflite.run(batch)
    assert tflite.run({IMAGE: images(2)})[PROBABILITIES].shape == (2, CLASSES)


def test_a_file_without_signatures_is_served_by_its_tensor_names(tmp_path):
    instance = _load(tf_builders.signatureless_tflite(tmp_path / "old.tflite"))
    assert instance.signature is None
    assert instance.describe() == {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "Identity", "datatype": "FP32", "shape": [-1, 3]}],
    }
    for rows in (1, 5, 2):
        x = np.random.default_rng(rows).standard_normal((rows, 4)).astype(np.float32)
        want = np.maximum(x.sum(axis=1, keepdims=True), 0).repeat(3, axis=1)
        np.testing.assert_allclose(instance.run({"x": x})["Identity"], want, rtol=1e-6)
    with pytest.raises(InvalidInput, match="dtype int32"):
        instance.run({"x": np.ones((1, 4), np.int32)})


def test_signature_choice_and_bad_files_are_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no signature 'predict' \(it has: serving_default\)"):
        _load(TFLITE_FILE, signature="predict")
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelLoadError, match=r"not a loadable \.tflite file"):
        _load(tmp_path / "junk.tflite")


def test_tflite_files_are_recognised_by_their_suffix():
    assert isinstance(runtime_for_artifact(TFLITE_FILE), TfliteRuntime)


def test_an_interpreter_is_never_shared_whatever_model_yaml_says():
    """`concurrency_safe: true` (say, a race test that passed by luck) must not make the
    server call one LiteRT interpreter from two threads."""
    config = ModelConfig.model_validate(
        {"backend": "tflite", "artifact": TFLITE_FILE.name, "concurrency_safe": True}
    )
    model_dir = TFLITE_FILE.parents[1]
    with pytest.raises(ConfigError, match="never shares an instance"):
        load_model_version("m", model_dir, int(TFLITE_FILE.parent.name), config)
