"""`batchserve check` on Python models (backend: python): the attributes `predict` writes
are found and named on the model's own object (and inside a torch module it holds), and
determinism and the race test run on its own example inputs or its declared tensors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchserve.repository.loader import read_config, runtime_options
from batchserve.runtimes import ModelInstance, get_runtime
from batchserve.safety.analysis import analyse
from tests.runtimes.python_models import COUNTERS, MARKS_IMPORT, write_model

REPO = Path(__file__).resolve().parents[2]
FAST = {"threads": 4, "iterations": 3}
VECTOR = {"x": (1, 4)}

#: A Python model around the seed's torch CustomLayerModel: the counter is in the module.
WRAPS_TORCH = """
import torch
from tests.models_zoo import CustomLayerModel


class WrapsTorch:
    inputs = ({"name": "x", "datatype": "FP32", "shape": [-1, 4]},)

    def load(self, version_dir, options):
        torch.manual_seed(0)
        self.net = CustomLayerModel().eval()

    def predict(self, inputs):
        with torch.inference_mode():
            return [{"y": self.net(torch.from_numpy(i["x"])).numpy()} for i in inputs]
"""


def load(folder: Path) -> ModelInstance:
    config = read_config(folder / "model.yaml")
    runtime = get_runtime(config.backend)
    return runtime.load(folder / "1", runtime_options(config, runtime, None, folder))


def test_a_counter_that_does_not_reach_the_answer_is_named_and_pooled(tmp_path) -> None:
    instance = load(write_model(tmp_path, "hidden", COUNTERS, "HiddenCounter"))
    report = analyse(instance, VECTOR, **FAST)
    assert report.verdict == "pool"
    attributes = report.finding("attributes")
    assert attributes.status == "fail" and attributes.title == "attributes written by predict"
    assert attributes.details == [
        "HiddenCounter.calls (attribute of the model object) changed from 0 to 1 during "
        "predict, and changed from 1 to 2 on the next call."
    ]
    assert report.finding("tensors").status == "skipped"
    assert report.finding("race").status == "pass"


def test_a_counter_in_the_answer_is_stateful(tmp_path) -> None:
    instance = load(write_model(tmp_path, "visible", COUNTERS, "VisibleCounter"))
    report = analyse(instance, VECTOR, **FAST)
    assert report.verdict == "stateful"
    assert report.finding("determinism").data["random"] is False
    assert any("VisibleCounter.calls" in reason for reason in report.reasons)


def test_state_inside_a_torch_module_the_model_holds_is_named_with_its_path(tmp_path) -> None:
    instance = load(write_model(tmp_path, "wraps", WRAPS_TORCH, "WrapsTorch"))
    report = analyse(instance, VECTOR, **FAST)
    assert report.verdict == "stateful"
    named = [d for d in report.finding("attributes").details if "CustomLayer.counter" in d]
    assert named and "(attribute of module 'net.layer')" in named[0]
    assert "during predict" in named[0]
    assert report.finding("tensors").status == "pass"  # the Linear's weights are untouched


def test_a_clean_model_is_checked_on_its_own_examples(tmp_path) -> None:
    instance = load(write_model(tmp_path, "clean", COUNTERS, "Clean"))
    report = analyse(instance, None, **FAST)  # None: the model's example(seed)
    assert report.verdict == "shared"
    assert report.finding("attributes").status == "pass"
    assert report.finding("race").status == "pass"


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "batchserve", "--log-level", "ERROR", "check", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("example", ["detector", "penguins"])
def test_the_examples_are_safe_to_share_by_the_cli(example) -> None:
    done = _check(str(REPO / "examples" / example), "--json", "--threads", "4")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["backend"] == "python"
    assert report["inputs"] == "the model's example(seed)"
    assert report["verdict"] == "shared"
    assert {c["check"]: c["status"] for c in report["checks"]} == {
        "training_mode": "skipped",
        "attributes": "pass",
        "tensors": "skipped",
        "determinism": "pass",
        "race": "pass",
    }


def test_the_cli_refuses_model_code_without_allow_code(tmp_path) -> None:
    folder = write_model(tmp_path, "marker", MARKS_IMPORT, "Marker", allow_code=False)
    done = _check(str(folder))
    assert done.returncode == 2
    assert "`allow_code: true`" in done.stderr
    assert not (folder / "imported").exists()


def test_the_cli_says_how_to_feed_a_model_without_examples_or_inputs(tmp_path) -> None:
    folder = write_model(tmp_path, "marker", MARKS_IMPORT, "Marker")
    done = _check(str(folder))
    assert done.returncode == 2
    assert "no example(seed) method" in done.stderr
