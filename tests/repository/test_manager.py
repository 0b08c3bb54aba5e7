from __future__ import annotations

import shutil
from collections.abc import Iterator

import numpy as np
import pytest

from batchserve.errors import ModelNotFound, ModelNotReady
from batchserve.repository.local_store import LocalStore
from batchserve.repository.manager import ModelManager
from tests.repository.builders import FAST_YAML, X, add_version, expected, wait_for


@pytest.fixture
def managers() -> Iterator[list[ModelManager]]:
    """Managers a test makes; all stopped at the end, whatever happened."""
    made: list[ModelManager] = []
    yield made
    for manager in made:
        manager.stop(drain=False, timeout=5)


def _manager(managers: list[ModelManager], *stores: LocalStore, **kwargs) -> ModelManager:
    manager = ModelManager(list(stores), **kwargs)
    managers.append(manager)
    return manager


def _run(manager: ModelManager, name: str, version: int | None = None) -> np.ndarray:
    return manager.get(name, version).submit({"x": X}).result(timeout=10).outputs["y"]


def _states(manager: ModelManager) -> dict[tuple[str, int], str]:
    return {(s.name, s.version): s.state for s in manager.index()}


def test_a_bad_model_yaml_is_refused_by_file_and_field_and_the_others_load(tmp_path, managers):
    add_version(tmp_path, "good", 1)
    add_version(tmp_path, "bad", 1, model_yaml="scheduler: {kind: shared, max_queue: -3}\n")
    manager = _manager(managers, LocalStore(tmp_path))
    manager.load_all()

    np.testing.assert_allclose(_run(manager, "good"), expected(1), rtol=1e-5)
    (problem,) = [s for s in manager.index() if s.name == "bad"]
    assert problem.state == "UNAVAILABLE"
    assert str(tmp_path / "bad" / "model.yaml") in problem.reason
    assert "scheduler.max_queue" in problem.reason
    with pytest.raises(ModelNotReady, match="max_queue"):
        manager.get("bad")
    with pytest.raises(ModelNotFound):
        manager.get("missing")


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ("", [3]),
        ("version_policy: {latest: 2}\n", [2, 3]),
        ("version_policy: {specific: [1, 3, 7]}\n", [1, 3]),
        ("version_policy: {all: true}\n", [1, 2, 3]),
    ],
)
def test_version_policy_and_requests_without_a_version_go_to_the_highest(
    tmp_path, managers, policy, served
):
    for version in (1, 2, 3):
        add_version(tmp_path, "m", version, model_yaml=FAST_YAML + policy)
    manager = _manager(managers, LocalStore(tmp_path))
    manager.load_all()
    assert sorted(m.version for m in manager.loaded()) == served
    assert manager.get("m").version == max(served)
    for version in served:
        np.testing.assert_allclose(_run(manager, "m", version), expected(version), rtol=1e-5)
    with pytest.raises(ModelNotFound):
        manager.get("m", 9)


def test_polling_loads_a_new_version_once_settled_then_swaps_it_in(tmp_path, managers):
    add_version(tmp_path, "m", 1)
    manager = _manager(managers, LocalStore(tmp_path))
    manager.load_all()
    old = manager.get("m")

    add_version(tmp_path, "m", 2)
    manager.poll()  # first sight: the files could still be being written
    assert manager.get("m").version == 1
    assert _states(manager)[("m", 2)] == "LOADING"
    manager.poll()  # unchanged since the last scan: load, then swap
    assert manager.get("m").version == 2
    np.testing.assert_allclose(_run(manager, "m"), expected(2), rtol=1e-5)
    wait_for(lambda: _states(manager)[("m", 1)] == "UNAVAILABLE", 10, "v1 to drain")
    assert old.instances == ()  # its sessions were released

    # A caller that took v1 before the swap and submits only now is served by v2.
    late = old.submit({"x": X}).result(timeout=10).outputs["y"]
    np.testing.assert_allclose(late, expected(2), rtol=1e-5)


def test_a_broken_new_version_leaves_the_old_one_serving(tmp_path, managers):
    add_version(tmp_path, "m", 1)
    manager = _manager(managers, LocalStore(tmp_path))
    manager.load_all()
    broken = tmp_path / "m" / "2" / "model.onnx"
    broken.parent.mkdir()
    broken.write_bytes(b"this is not an ONNX file")
    manager.poll()
    manager.poll()

    (v2,) = [s for s in manager.index() if s.version == 2]
    assert v2.state == "UNAVAILABLE"
    assert "model.onnx" in v2.reason
    assert manager.get("m").version == 1
    np.testing.assert_allclose(_run(manager, "m"), expected(1), rtol=1e-5)
    manager.poll()  # the same broken files are not tried again on every poll
    assert manager.stats().loads[("m", "failed")] == 1

    add_version(tmp_path, "m", 2)  # fixed: new files, so it is tried again
    manager.poll()
    manager.poll()
    assert manager.get("m").version == 2


def test_a_model_removed_from_the_store_is_unloaded(tmp_path, managers):
    add_version(tmp_path, "a", 1)
    add_version(tmp_path, "b", 1)
    manager = _manager(managers, LocalStore(tmp_path))
    manager.load_all()
    shutil.rmtree(tmp_path / "b")
    manager.poll()
    with pytest.raises(ModelNotFound):
        manager.get("b")
    assert [m.name for m in manager.loaded()] == ["a"]


def test_unload_holds_until_loaded_again(tmp_path, managers):
    add_version(tmp_path, "m", 1)
    manager = _manager(managers, LocalStore(tmp_path))
    manager.load_all()
    manager.unload("m")
    assert manager.loaded() == []
    manager.poll()  # polling does not undo an operator's unload
    with pytest.raises(ModelNotFound, match="unloaded"):
        manager.get("m")
    manager.request_load("m").result(timeout=30)
    np.testing.assert_allclose(_run(manager, "m"), expected(1), rtol=1e-5)
    with pytest.raises(ModelNotFound):
        manager.request_load("nope").result(timeout=30)


def test_the_first_store_that_has_a_model_wins(tmp_path, managers):
    add_version(tmp_path / "first", "m", 1, seed=11)
    add_version(tmp_path / "second", "m", 1, seed=22)
    add_version(tmp_path / "second", "other", 1)
    manager = _manager(managers, LocalStore(tmp_path / "first"), LocalStore(tmp_path / "second"))
    manager.load_all()
    np.testing.assert_allclose(_run(manager, "m"), expected(11), rtol=1e-5)
    assert manager.get("other").version == 1


def test_a_config_error_clears_when_the_original_file_returns_with_its_old_mtime(
    tmp_path, managers
):
    add_version(tmp_path, "m", 1)
    config = tmp_path / "m" / "model.yaml"
    saved = shutil.copy2(config, tmp_path / "model.yaml.saved")
    manager = _manager(managers, LocalStore(tmp_path))
    manager.load_all()

    config.write_text("scheduler: {kind: shared, max_queue: -3}\n")
    manager.poll()
    problem = {(s.name, s.version): s for s in manager.index()}[("m", 0)]
    assert problem.state == "UNAVAILABLE"
    assert "max_queue" in problem.reason

    shutil.copy2(saved, config)  # the original bytes and modification time, as `cp -p`
    manager.poll()
    assert _states(manager) == {("m", 1): "READY"}
    manager.request_load("m").result(timeout=30)  # an explicit load finds nothing wrong
    np.testing.assert_allclose(_run(manager, "m"), expected(1), rtol=1e-5)


def test_a_failed_reload_clears_when_the_original_files_return_with_their_old_mtimes(
    tmp_path, managers
):
    weights = add_version(tmp_path, "m", 1)
    saved = shutil.copy2(weights, tmp_path / "model.onnx.saved")
    manager = _manager(managers, LocalStore(tmp_path))
    manager.load_all()

    weights.write_bytes(b"this is not an ONNX file")
    manager.poll()  # first sight of the change: it settles
    manager.poll()  # the reload fails; the loaded files keep serving
    (v1,) = manager.index()
    assert (v1.state, "a reload failed" in v1.reason) == ("READY", True)
    np.testing.assert_allclose(_run(manager, "m"), expected(1), rtol=1e-5)

    shutil.copy2(saved, weights)  # the original bytes and modification time, as `cp -p`
    manager.poll()
    assert [(s.version, s.state, s.reason) for s in manager.index()] == [(1, "READY", "")]
    np.testing.assert_allclose(_run(manager, "m"), expected(1), rtol=1e-5)
