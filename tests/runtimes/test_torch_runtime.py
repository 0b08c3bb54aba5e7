from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from batchserve.datatypes import TensorSpec
from batchserve.errors import InferenceError, InvalidInput, ModelLoadError
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.runtimes import torch as torch_runtime
from batchserve.runtimes.base import ProcessThreads
from batchserve.runtimes.torch import TorchOptions
from tests import models_zoo

# TorchScript is deprecated in torch 2.13 but still what many deployed models are.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

MLP = "tests.models_zoo:TinyMLP"
F32 = np.dtype(np.float32)


def _load(
    path: Path,
    torch_module: str | None = None,
    torch_kwargs: dict[str, object] | None = None,
    **options: object,
):
    """Load with the torch runtime; `torch_module`/`torch_kwargs` are its own options."""
    own = TorchOptions(module=torch_module, kwargs=torch_kwargs or {})
    return load_instance("torch", path, RuntimeOptions(options=own, **options))  # type: ignore[arg-type]


def _eager(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module.eval()(torch.from_numpy(x)).numpy()


def _export(module: torch.nn.Module, path: Path) -> Path:
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (torch.randn(2, 4),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, str(path))
    return path


@pytest.fixture
def mlp() -> models_zoo.TinyMLP:
    torch.manual_seed(0)
    return models_zoo.TinyMLP().eval()


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)


def test_torchscript_matches_eager_and_names_inputs_from_its_schema(tmp_path, mlp, x):
    torch.jit.script(mlp).save(str(tmp_path / "model.pt"))
    instance = _load(tmp_path / "model.pt")
    assert instance.source == "torchscript"
    assert [s.name for s in instance.inputs] == ["x"]
    assert instance.shapes_known is False  # TorchScript does not record shapes
    out = instance.run({"x": x})
    np.testing.assert_allclose(out["output"], _eager(mlp, x), rtol=1e-6)
    assert instance.concurrency_safe is False


def test_declared_inputs_describe_and_validate_a_torchscript_model(tmp_path, mlp, x):
    torch.jit.script(mlp).save(str(tmp_path / "model.pt"))
    declared = (TensorSpec("x", F32, (-1, 4)),)
    outputs = (TensorSpec("scores", F32, (-1, 3)),)
    instance = _load(tmp_path / "model.pt", inputs=declared, outputs=outputs)
    assert instance.describe()["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert set(instance.run({"x": x})) == {"scores"}
    with pytest.raises(InvalidInput, match=r"shape \[5, 3\], expected \[-1, 4\]"):
        instance.run({"x": x[:, :3]})


def test_exported_program_describes_a_dynamic_batch_and_matches_eager(tmp_path, mlp, x):
    instance = _load(_export(mlp, tmp_path / "model.pt2"))
    assert instance.source == "export"
    assert instance.describe() == {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 3]}],
    }
    for rows in (1, 5):
        out = instance.run({"x": x[:rows]})
        np.testing.assert_allclose(out["output"], _eager(mlp, x[:rows]), rtol=1e-6)


def test_exported_program_refuses_a_wrong_shape_or_dtype_as_invalid_input(tmp_path, mlp, x):
    instance = _load(_export(mlp, tmp_path / "model.pt2"))
    with pytest.raises(InvalidInput, match="shape"):
        instance.run({"x": np.zeros((2, 5), np.float32)})
    with pytest.raises(InvalidInput, match="dtype float64"):
        instance.run({"x": x.astype(np.float64)})
    with pytest.raises(InvalidInput, match="the model takes"):
        instance.run({"y": x})


def test_safetensors_with_a_class_path_matches_eager(tmp_path, mlp, x):
    save_file(mlp.state_dict(), str(tmp_path / "model.safetensors"))
    instance = _load(tmp_path / "model.safetensors", torch_module=MLP)
    np.testing.assert_allclose(instance.run({"x": x})["output"], _eager(mlp, x), rtol=1e-6)


def test_safetensors_kwargs_build_the_module_and_strict_loading_refuses_a_mismatch(tmp_path):
    wide = models_zoo.TinyMLP(hidden=16)
    save_file(wide.state_dict(), str(tmp_path / "model.safetensors"))
    instance = _load(tmp_path / "model.safetensors", torch_module=MLP, torch_kwargs={"hidden": 16})
    assert instance.module.fc1.out_features == 16
    with pytest.raises(ModelLoadError, match="weights do not fit TinyMLP"):
        _load(tmp_path / "model.safetensors", torch_module=MLP)
    with pytest.raises(ModelLoadError, match=r"package\.module:Class"):
        _load(tmp_path / "model.safetensors")


def test_safetensors_dict_outputs_keep_their_keys(tmp_path, x):
    save_file(models_zoo.TwoHeads().state_dict(), str(tmp_path / "model.safetensors"))
    instance = _load(tmp_path / "model.safetensors", torch_module="tests.models_zoo:TwoHeads")
    out = instance.run({"x": x})
    assert set(out) == {"logits", "probs"}
    np.testing.assert_allclose(out["probs"].sum(axis=1), np.ones(5), rtol=1e-5)


def test_a_pickled_module_is_refused_without_allow_pickle_and_loaded_with_it(tmp_path, mlp, x):
    torch.save(mlp, tmp_path / "model.pth")
    with pytest.raises(ModelLoadError, match=r"allow_pickle: true"):
        _load(tmp_path / "model.pth")
    instance = _load(tmp_path / "model.pth", allow_pickle=True)
    np.testing.assert_allclose(instance.run({"x": x})["output"], _eager(mlp, x), rtol=1e-6)


def test_a_state_dict_file_loads_without_pickle_but_needs_the_class(tmp_path, mlp, x):
    torch.save(mlp.state_dict(), tmp_path / "weights.pt")  # a zip, but not TorchScript
    with pytest.raises(ModelLoadError, match="weights without a module"):
        _load(tmp_path / "weights.pt")
    instance = _load(tmp_path / "weights.pt", torch_module=MLP)
    assert instance.source == "torch.load"
    np.testing.assert_allclose(instance.run({"x": x})["output"], _eager(mlp, x), rtol=1e-6)


def test_a_corrupt_file_is_a_load_error(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"not a model at all")
    with pytest.raises(ModelLoadError):
        _load(tmp_path / "model.pt")


def test_dropout_saved_in_training_mode_serves_in_eval_mode(tmp_path, x):
    torch.manual_seed(0)
    model = models_zoo.DropoutModel().train()
    torch.jit.script(model).save(str(tmp_path / "model.pt"))
    instance = _load(tmp_path / "model.pt")
    assert [(t.path, t.kind) for t in instance.training_modules_at_load] == [("drop", "Dropout")]
    first, second = instance.run({"x": x})["output"], instance.run({"x": x})["output"]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, _eager(model, x), rtol=1e-6)


def test_dropout_exported_in_training_mode_is_switched_to_eval(tmp_path, x):
    torch.manual_seed(0)
    model = models_zoo.DropoutModel().train()
    instance = _load(_export(model, tmp_path / "model.pt2"))
    assert [(t.path, t.kind) for t in instance.training_modules_at_load] == [("drop", "Dropout")]
    np.testing.assert_allclose(instance.run({"x": x})["output"], _eager(model, x), rtol=1e-6)


def test_a_clean_model_reports_no_training_mode_modules(tmp_path, mlp):
    save_file(mlp.state_dict(), str(tmp_path / "model.safetensors"))
    instance = _load(tmp_path / "model.safetensors", torch_module=MLP)
    assert instance.training_modules_at_load == ()
    assert not instance.module.training


def test_a_model_failure_is_an_inference_error(tmp_path, mlp):
    torch.jit.script(mlp).save(str(tmp_path / "model.pt"))
    instance = _load(tmp_path / "model.pt")  # shapes unknown, so the model itself fails
    with pytest.raises(InferenceError, match="torch model failed"):
        instance.run({"x": np.zeros((2, 7), np.float32)})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_falls_back_to_cpu_with_a_warning(tmp_path, mlp, x, caplog):
    torch.jit.script(mlp).save(str(tmp_path / "model.pt"))
    with caplog.at_level(logging.WARNING, logger="batchserve.runtimes.torch"):
        instance = _load(tmp_path / "model.pt", device="cuda")
    assert instance.device == torch.device("cpu")
    assert "CUDA is not available" in caplog.text
    assert instance.run({"x": x})["output"].shape == (5, 3)


def test_thread_count_is_set_once_per_process(tmp_path, mlp, monkeypatch, caplog):
    fresh = ProcessThreads("torch", torch.set_num_threads, torch_runtime.log)
    monkeypatch.setattr(torch_runtime, "process_threads", fresh)
    torch.jit.script(mlp).save(str(tmp_path / "model.pt"))
    _load(tmp_path / "model.pt", intra_op_threads=1)
    assert torch.get_num_threads() == 1
    with caplog.at_level(logging.WARNING, logger="batchserve.runtimes.torch"):
        _load(tmp_path / "model.pt", intra_op_threads=2)
    assert torch.get_num_threads() == 1
    assert "already set to 1" in caplog.text
