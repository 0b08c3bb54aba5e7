"""Three models under a budget that fits two: LRU unload, reload on demand, answers right."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from batchserve.errors import ModelNotReady
from batchserve.repository.local_store import LocalStore
from batchserve.repository.manager import ModelManager
from tests.live_server import LiveServer
from tests.repository.builders import add_version, answer, expected, infer_body

#: 1024 x 1024 float32 weights: a 4.2 MB file, counted as 8.4 MB resident (2x its files).
FEATURES = OUTPUTS = 1024
BUDGET = "20MB"  # two such models (16.8 MB), never three (25.2 MB)
SEEDS = {"a": 1, "b": 2, "c": 3}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget-repo")
    for name, seed in SEEDS.items():
        add_version(root, name, 1, seed=seed, features=FEATURES, outputs=OUTPUTS)
    add_version(root, "huge", 1, features=2048, outputs=2048)  # 33.6 MB counted: never fits
    return root


def _infer(manager: ModelManager, name: str) -> np.ndarray:
    model = manager.acquire(name).result(timeout=60)
    x = np.ones((1, FEATURES), dtype=np.float32)
    return model.submit({"x": x}).result(timeout=10).outputs["y"]


def _loaded(manager: ModelManager) -> list[str]:
    return sorted(m.name for m in manager.loaded())


def test_lru_unload_and_reload_on_demand_in_process(repository):
    manager = ModelManager([LocalStore(repository)], memory_budget_bytes=20_000_000)
    try:
        manager.load_all()
        assert manager.loaded() == []  # lazy: nothing until asked for
        assert manager.is_ready()
        for name in ("a", "b"):
            np.testing.assert_allclose(
                _infer(manager, name),
                expected(SEEDS[name], FEATURES, OUTPUTS),
                rtol=1e-4,
                atol=1e-3,
            )
        assert _loaded(manager) == ["a", "b"]

        _infer(manager, "c")  # a is the least recently used
        assert _loaded(manager) == ["b", "c"]
        (a,) = [s for s in manager.index() if s.name == "a"]
        assert a.state == "UNAVAILABLE" and "memory budget" in a.reason

        np.testing.assert_allclose(
            _infer(manager, "a"), expected(1, FEATURES, OUTPUTS), rtol=1e-4, atol=1e-3
        )
        assert _loaded(manager) == ["a", "c"]  # b was used before c
        assert manager.stats().used_bytes <= 20_000_000

        with pytest.raises(ModelNotReady, match="more than the whole memory budget"):
            manager.acquire("huge").result(timeout=60)
        with pytest.raises(ModelNotReady, match="more than the whole memory budget"):
            manager.acquire("huge")  # known not to fit: refused at once, no second try
        assert _loaded(manager) == ["a", "c"]  # nothing was unloaded for it
    finally:
        manager.stop(drain=False, timeout=5)


def _post(url: str, name: str) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{name}/infer", json=infer_body(FEATURES), timeout=60)


def _metric_lines(url: str, prefix: str) -> list[str]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_lru_through_the_server(repository):
    with LiveServer([repository], "--memory-budget", BUDGET) as server:
        for name in ("a", "b"):
            np.testing.assert_allclose(
                answer(_post(server.url, name)),
                expected(SEEDS[name], FEATURES, OUTPUTS),
                rtol=1e-4,
                atol=1e-3,
            )
        # Eight requests at once for an unloaded model: all wait for one load.
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: _post(server.url, "c"), range(8)))
        for response in responses:
            np.testing.assert_allclose(
                answer(response), expected(3, FEATURES, OUTPUTS), rtol=1e-4, atol=1e-3
            )
        assert 'batchserve_model_loads_total{model="c",outcome="ok"} 1.0' in _metric_lines(
            server.url, "batchserve_model_loads_total"
        )
        states = _metric_lines(server.url, "batchserve_model_state")
        assert 'batchserve_model_state{model="a",state="UNAVAILABLE",version="1"} 1.0' in states
        assert 'batchserve_model_state{model="c",state="READY",version="1"} 1.0' in states
        resident = _metric_lines(server.url, "batchserve_model_resident_bytes{")
        assert sorted(line.split('"')[1] for line in resident) == ["b", "c"]

        # a comes back on demand (b goes), with the right answers.
        np.testing.assert_allclose(
            answer(_post(server.url, "a")), expected(1, FEATURES, OUTPUTS), rtol=1e-4, atol=1e-3
        )
        resident = _metric_lines(server.url, "batchserve_model_resident_bytes{")
        assert sorted(line.split('"')[1] for line in resident) == ["a", "c"]

        too_big = _post(server.url, "huge")
        assert too_big.status_code == 503
        assert "more than the whole memory budget" in too_big.json()["error"]
        assert too_big.headers["retry-after"]
        # ...and the others still serve.
        np.testing.assert_allclose(
            answer(_post(server.url, "c")), expected(3, FEATURES, OUTPUTS), rtol=1e-4, atol=1e-3
        )
