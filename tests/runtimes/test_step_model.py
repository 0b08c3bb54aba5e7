"""The step-model contract on the shipped docgen GRU: prompts of different lengths
prefilled in one call, and sequences at different positions decoded in one call, give
each sequence exactly what it gets alone."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from batchserve.config import StepTensorNames
from batchserve.errors import ModelLoadError
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.runtimes.step_model import StepModel
from tests import onnx_builders

ROOT = Path(__file__).resolve().parents[2]
DOCGEN = ROOT / "models" / "docgen" / "1" / "model.onnx"


@pytest.fixture(scope="module")
def model() -> StepModel:
    instance = load_instance("onnx", DOCGEN, RuntimeOptions(intra_op_threads=1))
    return StepModel(instance, eos_token=256, bos_token=256)


def test_it_reads_the_state_shape_and_vocabulary_from_the_artifact(model: StepModel) -> None:
    assert model.state_shape == (2, 192)
    assert model.vocab_size == 257
    sequence = model.init_state(list(b"abc"))
    assert sequence.pending == [256, 97, 98, 99]  # the start token first
    assert sequence.state.shape == (2, 192) and not sequence.state.any()


def test_a_padded_batch_of_sequences_gives_each_what_it_gets_alone(model: StepModel) -> None:
    prompts = [b"def f(x):\n", b"R", b"class Path:\nA path", b"The "]
    batch = [model.init_state(list(p)) for p in prompts]
    solo = copy.deepcopy(batch)
    logits = model.step(batch)
    for i, sequence in enumerate(solo):
        np.testing.assert_array_equal(model.step([sequence])[0], logits[i])
        np.testing.assert_array_equal(sequence.state, batch[i].state)
        assert batch[i].position == len(prompts[i]) + 1 and len(batch[i].pending) == 0
    # Decode: sequences at different positions, a different next token each.
    for i, sequence in enumerate(batch):
        model.append(sequence, 100 + i)
        model.append(solo[i], 100 + i)
    logits = model.step(batch)
    for i, sequence in enumerate(solo):
        np.testing.assert_array_equal(model.step([sequence])[0], logits[i])


def test_the_stop_rule_is_the_end_token_or_the_limit(model: StepModel) -> None:
    sequence = model.init_state([1])
    model.append(sequence, 65)
    assert model.finished(sequence, 65, max_tokens=2) is None
    model.append(sequence, 66)
    assert model.finished(sequence, 66, max_tokens=2) == "length"
    model.append(sequence, 256)
    assert model.finished(sequence, 256, max_tokens=10) == "stop"
    assert sequence.generated == [65, 66]  # the end token is not part of the output


def test_a_model_without_the_step_tensors_is_refused_with_their_names(tmp_path: Path) -> None:
    linear = load_instance(
        "onnx", onnx_builders.linear_model(tmp_path / "linear.onnx"), RuntimeOptions()
    )
    with pytest.raises(ModelLoadError, match="not a step model"):
        StepModel(linear, eos_token=0)
    instance = load_instance("onnx", DOCGEN, RuntimeOptions(intra_op_threads=1))
    with pytest.raises(ModelLoadError, match="'hidden'"):
        StepModel(instance, eos_token=256, names=StepTensorNames(state="hidden"))
