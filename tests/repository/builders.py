"""Model repositories the tests build: linear ONNX models whose versions answer differently."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from tests.onnx_builders import linear_model, linear_reference

#: Explicit scheduler values: no profiling, so a load takes milliseconds.
FAST_YAML = "scheduler: {kind: shared, instances: 2, threads: 1, max_batch_size: 1}\n"
X = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)


def add_version(
    root: Path,
    name: str,
    version: int,
    *,
    seed: int | None = None,
    features: int = 4,
    outputs: int = 3,
    model_yaml: str = FAST_YAML,
) -> Path:
    """`root/name/version/model.onnx`, a linear model seeded by `seed` (default: version),
    `features` in and `outputs` out: its weights take 4 x features x outputs bytes."""
    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    if not (model_dir / "model.yaml").exists():
        (model_dir / "model.yaml").write_text(model_yaml)
    seed = version if seed is None else seed
    return linear_model(model_dir / str(version) / "model.onnx", features, outputs, seed=seed)


def expected(seed: int, features: int = 4, outputs: int = 3) -> np.ndarray:
    """What the version built with `seed` answers to `infer_body(features)`."""
    x = X if features == 4 else np.ones((1, features), dtype=np.float32)
    return linear_reference(x, features, outputs, seed=seed)


def infer_body(features: int = 4) -> dict[str, object]:
    x = X if features == 4 else np.ones((1, features), dtype=np.float32)
    tensor = {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
    return {"inputs": [tensor]}


def answer(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    (out,) = response.json()["outputs"]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def which_seed(y: np.ndarray, seeds: list[int], features: int = 4) -> int:
    """The seed whose model gives `y` (the tests' versions are told apart by their answer)."""
    for seed in seeds:
        if np.allclose(y, expected(seed, features), rtol=1e-4, atol=1e-4):
            return seed
    raise AssertionError(f"{y} is no version's answer")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 0.1 s, for at most `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def index(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, str], dict[str, str]]:
    """The repository index by (name, version)."""
    r = httpx.post(f"{url}/v2/repository/index", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return {(e["name"], e["version"]): e for e in r.json()}


def state(url: str, name: str, version: int) -> str:
    entry = index(url).get((name, str(version)))
    return entry["state"] if entry else "ABSENT"
