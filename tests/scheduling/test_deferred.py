"""Deferred requests: prepared, run and finished by the worker that takes them."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from batchserve.errors import InferenceError, InvalidInput
from batchserve.scheduling import DynamicBatcher
from batchserve.scheduling.deferred import DeclaredTensor, Deferred
from tests.scheduling.instances import ObservedInstance

ROW = {"x": DeclaredTensor(np.dtype(np.float32), (1, 4))}


def _row(value: float) -> dict[str, np.ndarray]:
    return {"x": np.full((1, 4), value, dtype=np.float32)}


@pytest.fixture
def batcher(linear):
    observed = ObservedInstance(linear)
    batcher = DynamicBatcher([observed], max_batch_size=8)
    batcher.observed = observed  # type: ignore[attr-defined]
    yield batcher
    batcher.stop()


def test_prepare_and_finish_run_on_the_worker_around_the_call(batcher, linear):
    threads: list[str] = []

    def prepare() -> dict[str, np.ndarray]:
        threads.append(threading.current_thread().name)
        return _row(2.0)

    def finish(outputs: dict[str, np.ndarray]) -> float:
        threads.append(threading.current_thread().name)
        return float(outputs["y"].sum())

    batcher.start()
    result = batcher.submit(Deferred(prepare, ROW, finish)).result(timeout=5)
    assert result.outputs == pytest.approx(float(linear.run(_row(2.0))["y"].sum()))
    assert result.prepare_s > 0
    assert len(threads) == 2 and threads[0] == threads[1] != threading.current_thread().name


def test_deferred_requests_share_a_batch(batcher, linear):
    futures = [batcher.submit(Deferred(lambda v=v: _row(v), ROW)) for v in range(6)]
    batcher.start()
    results = [f.result(timeout=5) for f in futures]
    assert batcher.observed.calls == [6]
    for v, result in enumerate(results):
        assert result.batch_size == 6
        np.testing.assert_allclose(result.outputs["y"], linear.run(_row(v))["y"], rtol=1e-6)


def test_a_failing_prepare_fails_its_request_alone(batcher):
    def bad() -> dict[str, np.ndarray]:
        raise InvalidInput("not an image")

    good = [batcher.submit(Deferred(lambda: _row(1.0), ROW)) for _ in range(3)]
    failing = batcher.submit(Deferred(bad, ROW))
    batcher.start()
    with pytest.raises(InvalidInput, match="not an image"):
        failing.result(timeout=5)
    assert [f.result(timeout=5).batch_size for f in good] == [3, 3, 3]


def test_inputs_other_than_declared_are_refused(batcher):
    wrong = batcher.submit(Deferred(lambda: {"x": np.ones((1, 5), dtype=np.float32)}, ROW))
    batcher.start()
    with pytest.raises(InferenceError, match="differ from the declared"):
        wrong.result(timeout=5)


def test_a_tensor_model_needs_a_declaration(batcher):
    with pytest.raises(ValueError, match="declares fixed-size inputs"):
        batcher.submit(Deferred(lambda: _row(1.0)))
