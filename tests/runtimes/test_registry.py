"""The runtime registry: a backend from another package's entry point is served like a
built-in one; an unknown backend is refused naming the installed ones, and a known one
whose framework is missing naming the extra that installs it.

The throwaway package is a real distribution to importlib.metadata: a module and a
`*.dist-info/` folder with `entry_points.txt`, on the server's PYTHONPATH. The same
folder's `sitecustomize.py` makes torch absent in that server (`sys.modules["torch"] =
None` is how Python spells "not installed"), so the missing-extra answer is the real one.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from batchserve.errors import ConfigError
from batchserve.repository.loader import read_config
from tests import onnx_builders
from tests.live_server import LiveServer

BACKEND = '''
"""A backend from a package that is not batchserve: y = factor * x + offset."""

import numpy as np
from pydantic import BaseModel, ConfigDict

from batchserve.datatypes import TensorSpec
from batchserve.runtimes.base import ModelInstance, Runtime


class ScaleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offset: float = 0.0


class ScaleInstance(ModelInstance):
    concurrency_safe = True
    inputs = (TensorSpec("x", np.dtype(np.float32), (-1, -1)),)
    outputs = (TensorSpec("y", np.dtype(np.float32), (-1, -1)),)

    def __init__(self, factor, offset):
        self.factor, self.offset = factor, offset

    def run(self, inputs):
        return {"y": inputs["x"] * self.factor + self.offset}


class ScaleRuntime(Runtime):
    name = "scale"
    platform = "scale_text"
    default_artifact = "factor.txt"
    suffixes = (".factor",)
    shared_by_default = True
    Options = ScaleOptions

    def load(self, path, options):
        own = self.options_of(options)
        return ScaleInstance(float(path.read_text()), own.offset)
'''

#: `onnx` is a built-in name: the plugin's claim on it must be ignored.
ENTRY_POINTS = """
[batchserve.runtimes]
scale = scale_backend:ScaleRuntime
onnx = scale_backend:ScaleRuntime
"""


def write_plugin(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "scale_backend.py").write_text(textwrap.dedent(BACKEND))
    info = root / "scale_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: scale-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (root / "sitecustomize.py").write_text('import sys\n\nsys.modules["torch"] = None\n')
    return root


def write_repository(root: Path) -> Path:
    scaled = root / "scaled"
    (scaled / "1").mkdir(parents=True)
    (scaled / "1" / "factor.txt").write_text("3")
    (scaled / "model.yaml").write_text(
        "backend: scale\nscale: {offset: 1}\n"
        "scheduler: {instances: 1, threads: 1, max_batch_size: 4}\n"
    )
    linear = root / "linear"
    onnx_builders.linear_model(linear / "1" / "model.onnx")
    (linear / "model.yaml").write_text("scheduler: {instances: 1, threads: 1, max_batch_size: 1}\n")
    for name, backend in (("unknown", "nope"), ("needs_torch", "torch")):
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.pt").write_bytes(b"")
        (root / name / "model.yaml").write_text(f"backend: {backend}\n")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("registry")
    plugin = write_plugin(base / "plugin")
    repository = write_repository(base / "models")
    path = os.pathsep.join(p for p in (str(plugin), os.environ.get("PYTHONPATH")) if p)
    with LiveServer([repository], env={"PYTHONPATH": path}) as live:
        yield live


def reasons(server: LiveServer) -> dict[str, str]:
    index = httpx.post(f"{server.url}/v2/repository/index", json={}, timeout=10).json()
    return {entry["name"]: entry["reason"] for entry in index}


def test_a_backend_from_an_entry_point_is_served(server: LiveServer) -> None:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
    answer = httpx.post(f"{server.url}/v2/models/scaled/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [4.0, 7.0]  # 3x + 1: its own option too
    meta = httpx.get(f"{server.url}/v2/models/scaled", timeout=10).json()
    assert meta["platform"] == "scale_text"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, -1]}]


def test_a_plugin_cannot_take_a_built_in_name(server: LiveServer) -> None:
    meta = httpx.get(f"{server.url}/v2/models/linear", timeout=10).json()
    assert meta["platform"] == "onnxruntime_onnx"
    x = np.ones((1, 4), np.float32)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": x.tolist()}]}
    answer = httpx.post(f"{server.url}/v2/models/linear/infer", json=body, timeout=30)
    expected = onnx_builders.linear_reference(x)
    np.testing.assert_allclose(answer.json()["outputs"][0]["data"], expected.ravel(), rtol=1e-5)


def test_an_unknown_backend_is_refused_naming_the_installed_ones(server: LiveServer) -> None:
    reason = reasons(server)["unknown"]
    found = re.search(r"unknown backend 'nope'; installed: ([\w, ]+)", reason)
    assert found, reason
    installed = set(found.group(1).split(", "))
    assert {"onnx", "python", "scale"} <= installed
    assert "torch" not in installed  # not installed in this server
    answer = httpx.post(f"{server.url}/v2/models/unknown/infer", json={}, timeout=10)
    assert answer.status_code == 503 and "unknown backend 'nope'" in answer.json()["error"]


def test_a_known_backend_without_its_framework_names_the_extra(server: LiveServer) -> None:
    assert (
        "backend 'torch' needs its framework (torch): pip install 'batchserve[torch]'"
        in (reasons(server)["needs_torch"])
    )


def test_read_config_names_the_file_and_the_installed_backends(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("backend: nope\n")
    with pytest.raises(ConfigError, match=r"model\.yaml: backend: unknown backend 'nope'"):
        read_config(tmp_path / "model.yaml")
