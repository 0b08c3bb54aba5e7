from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.runtimes.torch import TorchOptions
from batchserve.safety.analysis import analyse, race_test
from batchserve.safety.inputs import random_inputs
from batchserve.safety.verdict import decide
from tests import models_zoo, onnx_builders

# TorchScript is deprecated in torch 2.13 but still what many deployed models are.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

VECTOR = {"x": (1, 4)}
IMAGE = {"x": (1, 3, 8, 8)}
FAST = {"threads": 4, "iterations": 3}


def _instance(tmp_path: Path, cls_name: str, form: str, *, train: bool = False):
    """Save a zoo model as serving would find it, and load it with the torch runtime."""
    torch.manual_seed(0)
    model = getattr(models_zoo, cls_name)()
    model.train(train)
    if form == "torchscript":
        path = tmp_path / "model.pt"
        torch.jit.script(model).save(str(path))
        return load_instance("torch", path, RuntimeOptions())
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))
    options = RuntimeOptions(options=TorchOptions(module=f"tests.models_zoo:{cls_name}"))
    return load_instance("torch", path, options)


@pytest.mark.parametrize("form", ["safetensors", "torchscript"])
def test_the_seeds_custom_layer_is_stateful_and_its_counter_is_named(tmp_path, form):
    report = analyse(_instance(tmp_path, "CustomLayerModel", form), VECTOR, **FAST)
    assert report.verdict == "stateful"
    assert report.verdict_line == "stateful: fix the model"
    assert not report.concurrency_safe
    assert report.finding("attributes").status == "fail"
    assert report.finding("determinism").data["random"] is False
    named = [r for r in report.reasons if "CustomLayer.counter" in r]
    assert named and "module 'layer'" in named[0] and "changed from 0 to 1" in named[0]


@pytest.mark.parametrize("form", ["safetensors", "torchscript"])
def test_dropout_left_in_training_mode_is_reported_and_still_shared(tmp_path, form):
    report = analyse(_instance(tmp_path, "DropoutModel", form, train=True), VECTOR, **FAST)
    assert report.verdict == "shared"
    assert report.finding("training_mode").status == "warn"
    said = [r for r in report.reasons if "Dropout 'drop' was in training mode" in r]
    assert said and "serving switches it to eval" in said[0]


@pytest.mark.parametrize("form", ["safetensors", "torchscript"])
def test_a_clean_conv_model_is_shared(tmp_path, form):
    report = analyse(_instance(tmp_path, "CleanConvNet", form), IMAGE, **FAST)
    assert report.verdict == "shared"
    assert report.concurrency_safe and report.instances == 1
    assert {f.check: f.status for f in report.findings} == {
        "training_mode": "pass",
        "attributes": "pass",
        "tensors": "pass",
        "determinism": "pass",
        "race": "pass",
    }
    assert report.finding("race").data == {
        "threads": 4,
        "iterations": 3,
        "mismatches": 0,
        "errors": 0,
    }


def test_state_that_never_reaches_the_outputs_gives_a_pool_sized_by_memory(tmp_path):
    report = analyse(_instance(tmp_path, "CallCounterModel", "safetensors"), VECTOR, **FAST)
    assert report.verdict == "pool"
    assert any("CallCounterModel.calls" in r for r in report.reasons)
    assert report.memory.weights_bytes == (4 * 2 + 2) * 4  # Linear(4, 2) in float32
    assert report.memory.activation_bytes > 0  # measured, not assumed
    per = report.memory.per_instance_bytes
    assert decide(report.findings, report.memory, 100 * per, cpus=4).instances == 4
    assert decide(report.findings, report.memory, 2 * per + 1, cpus=4).instances == 2
    assert decide(report.findings, report.memory, per // 2, cpus=4).instances == 1
    assert any("so the pool has" in r for r in report.reasons)


def test_the_race_test_catches_calls_that_overwrite_each_other(tmp_path):
    instance = _instance(tmp_path, "ScratchModel", "safetensors")
    make_inputs = functools.partial(random_inputs, instance.inputs, VECTOR)
    finding = race_test(instance, make_inputs, threads=4, iterations=3)
    assert finding.status == "fail"
    assert finding.data["mismatches"] > 0
    assert "concurrent calls interfere" in finding.details[0]
    report = analyse(instance, VECTOR, **FAST)
    assert report.verdict == "pool"
    assert any("ScratchModel.scratch" in r for r in report.reasons)


def test_random_outputs_are_told_apart_from_state(tmp_path):
    report = analyse(_instance(tmp_path, "NoisyModel", "safetensors"), VECTOR, **FAST)
    determinism = report.finding("determinism")
    assert determinism.status == "warn" and determinism.data["random"] is True
    assert report.verdict == "pool"
    assert report.finding("race").status == "skipped"


def test_a_write_on_the_first_call_only_is_lazy_initialisation_not_state(tmp_path):
    report = analyse(_instance(tmp_path, "LazyScale", "safetensors"), VECTOR, **FAST)
    assert report.verdict == "shared"
    assert report.finding("attributes").status == "warn"
    assert any("LazyScale.scale" in r and "first call only" in r for r in report.reasons)


def test_an_onnx_model_gets_the_runtime_agnostic_checks_and_is_shared(tmp_path):
    path = onnx_builders.linear_model(tmp_path / "model.onnx")
    instance = load_instance("onnx", path, RuntimeOptions(intra_op_threads=1))
    report = analyse(instance, VECTOR, artifact_bytes=path.stat().st_size, **FAST)
    assert report.verdict == "shared"
    statuses = {f.check: f.status for f in report.findings}
    assert statuses["attributes"] == statuses["training_mode"] == "skipped"
    assert statuses["determinism"] == statuses["race"] == "pass"
    assert report.memory.weights_bytes == path.stat().st_size
