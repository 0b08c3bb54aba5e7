from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from batchserve.cli import main
from batchserve.config import load_model_config
from batchserve.safety.config_writer import write_verdict
from batchserve.safety.memory import MemoryEstimate
from batchserve.safety.verdict import SafetyReport
from tests import models_zoo, onnx_builders

REPO = Path(__file__).resolve().parents[2]


def _model_folder(root: Path, cls_name: str, yaml_text: str = "") -> Path:
    """A model folder as the repository holds it: model.yaml and version 1 as safetensors."""
    torch.manual_seed(0)
    folder = root / cls_name.lower()
    (folder / "1").mkdir(parents=True)
    model = getattr(models_zoo, cls_name)()
    save_file(model.state_dict(), str(folder / "1" / "model.safetensors"))
    (folder / "model.yaml").write_text(
        "backend: torch\n"
        "artifact: model.safetensors\n"
        "torch:\n"
        f"  module: tests.models_zoo:{cls_name}\n" + yaml_text
    )
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`batchserve check` in a fresh process, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # so that tests.models_zoo imports
    return subprocess.run(
        [sys.executable, "-m", "batchserve", "--log-level", "ERROR", "check", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


VECTOR_INPUT = "inputs:\n  - {name: x, datatype: FP32, shape: [-1, 4]}\n"


def test_cli_finds_the_custom_layer_stateful_and_exits_1(tmp_path):
    folder = _model_folder(tmp_path, "CustomLayerModel", VECTOR_INPUT)
    done = _cli(str(folder), "--json", "--threads", "2", "--iterations", "2")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] == "stateful"
    assert report["input_shapes"] == {"x": [1, 4]}
    assert any("counter" in reason for reason in report["reasons"])


def test_cli_write_records_the_verdict_and_keeps_the_rest_of_model_yaml(tmp_path):
    extra = "# a clean conv model\nscheduler:\n  max_queue: 64  # small on purpose\n"
    folder = _model_folder(tmp_path, "CleanConvNet", extra)
    done = _cli(str(folder), "--input-shape", "1,3,8,8", "--json", "--write", "--threads", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] == "shared"
    assert "scheduler.kind: auto (default) -> shared" in report["written"]
    text = (folder / "model.yaml").read_text()
    assert "# small on purpose" in text and "# a clean conv model" in text
    config = load_model_config(folder / "model.yaml")
    assert config.scheduler.kind == "shared"
    assert config.scheduler.instances == 1
    assert config.scheduler.max_queue == 64
    assert config.concurrency_safe is True


def test_check_writes_a_pool_for_state_that_never_reaches_the_outputs(tmp_path, capsys):
    folder = _model_folder(tmp_path, "CallCounterModel", VECTOR_INPUT)
    code = main(["check", str(folder), "--write", "--threads", "2", "--iterations", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "verdict: pool(" in out and "CallCounterModel.calls" in out
    config = load_model_config(folder / "model.yaml")
    assert config.scheduler.kind == "pool"
    assert isinstance(config.scheduler.instances, int) and config.scheduler.instances >= 1
    assert config.concurrency_safe is False


def test_check_says_dropout_in_training_mode_is_switched_to_eval(tmp_path, capsys):
    folder = _model_folder(tmp_path, "DropoutModel", VECTOR_INPUT)
    code = main(["check", str(folder), "--json", "--threads", "2", "--iterations", "2"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["verdict"] == "shared"
    assert any("Dropout 'drop'" in r and "eval" in r for r in report["reasons"])


def test_check_a_bare_onnx_file(tmp_path, capsys):
    path = onnx_builders.linear_model(tmp_path / "model.onnx")
    code = main(["check", str(path), "--json", "--threads", "2", "--iterations", "2"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["verdict"] == "shared" and report["backend"] == "onnx"
    assert report["input_shapes"] == {"x": [1, 4]}  # the dynamic batch became 1


TF_REPOSITORY = REPO / "models-tf"  # make tf-models


@pytest.mark.parametrize("model", ["mobilenet_savedmodel", "mobilenet_keras"])
def test_check_finds_a_tensorflow_model_safe_to_share(model, capsys):
    folder = TF_REPOSITORY / model
    code = main(["check", str(folder), "--json", "--threads", "2", "--iterations", "2"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["backend"] == "tensorflow" and report["verdict"] == "shared"
    assert report["input_shapes"] == {"image": [1, 224, 224, 3]}
    status = {c["check"]: c["status"] for c in report["checks"]}
    assert status["determinism"] == "pass" and status["race"] == "pass"
    assert status["training_mode"] == "skipped"  # no torch module to look into


def test_check_finds_one_tflite_interpreter_unsafe_to_share():
    """Calls interfere on one LiteRT interpreter (its outputs are overwritten mid-call),
    as its documentation says. The runtime knows it, so the verdict is a pool whatever a
    race test would show (one that passed by luck must not lead to sharing); the race
    test is not run on it. In a process of its own, as a user runs it."""
    done = _cli(str(TF_REPOSITORY / "mobilenet_tflite"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["backend"] == "tflite" and report["verdict"] == "pool"
    assert "never safe to call from two threads" in report["reasons"][0]
    assert "race" not in {f["check"] for f in report["checks"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing.onnx"], "no such file"),
        (["{tmp}/mlp.safetensors"], "package.module:Class"),
        (["{tmp}/mlp.safetensors", "--torch-module", "tests.models_zoo:TinyMLP"], "--input-shape"),
        (["{tmp}/mlp.safetensors", "--torch-module", "tests.models_zoo:TinyMLP",
          "--input-shape", "1,4", "--write"], "--write needs a model folder"),
    ],
)  # fmt: skip
def test_unusable_models_and_arguments_exit_2_with_a_message(tmp_path, capsys, args, message):
    save_file(models_zoo.TinyMLP().state_dict(), str(tmp_path / "mlp.safetensors"))
    code = main(["check", *(a.format(tmp=tmp_path) for a in args)])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_bad_memory_budget_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["check", str(tmp_path), "--memory-budget", "lots"])
    assert exited.value.code == 2
    assert "not a size" in capsys.readouterr().err


def _pool_report(instances: int) -> SafetyReport:
    return SafetyReport(
        verdict="pool",
        instances=instances,
        reasons=[],
        findings=[],
        memory=MemoryEstimate(1, 1, "test"),
        memory_budget=10,
        cpus=4,
    )


def test_write_falls_back_to_rewriting_a_flow_style_file_and_says_so(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("# note\nbackend: onnx\nscheduler: {kind: auto, max_queue: 8}\n")
    changes = write_verdict(path, _pool_report(3))
    assert "scheduler.instances: auto (default) -> 3" in changes
    assert any("comments were not kept" in c for c in changes)
    data = yaml.safe_load(path.read_text())
    assert data["scheduler"] == {"kind": "pool", "max_queue": 8, "instances": 3}
    assert load_model_config(path).concurrency_safe is False


def test_write_keeps_a_dynamic_batcher_and_changes_nothing_twice(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("scheduler:\n  kind: batch\n  max_batch_size: 8\n")
    assert write_verdict(path, _pool_report(3)) == ["concurrency_safe: (unset) -> false"]
    assert load_model_config(path).scheduler.kind == "batch"
    assert write_verdict(path, _pool_report(3)) == []
