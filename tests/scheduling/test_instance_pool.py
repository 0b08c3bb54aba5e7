from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from batchserve.errors import QueueFull
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.scheduling import InstancePool
from tests import onnx_builders
from tests.scheduling.instances import ObservedInstance


def _unsafe_instances(tmp_path: Path, n: int) -> list[ObservedInstance]:
    path = onnx_builders.linear_model(tmp_path / "linear.onnx")
    return [
        ObservedInstance(
            load_instance("onnx", path, RuntimeOptions(intra_op_threads=1)),
            delay_s=0.002,
            safe=False,
        )
        for _ in range(n)
    ]


def test_each_instance_serves_one_caller_at_a_time(tmp_path):
    instances = _unsafe_instances(tmp_path, 2)
    pool = InstancePool(instances)
    pool.start()
    xs = [np.full((1, 4), i, np.float32) for i in range(200)]
    try:
        with ThreadPoolExecutor(32) as ex:
            results = list(ex.map(lambda x: pool.submit({"x": x}).result(timeout=30), xs))
    finally:
        pool.stop()
    for x, r in zip(xs, results, strict=True):
        np.testing.assert_allclose(r.outputs["y"], onnx_builders.linear_reference(x), rtol=1e-5)
    assert [i.max_active for i in instances] == [1, 1]
    assert all(i.calls for i in instances), "both instances took work"
    assert sum(len(i.calls) for i in instances) == 200


def test_waiting_callers_are_served_first_come_first_served(tmp_path):
    (instance,) = _unsafe_instances(tmp_path, 1)
    instance.gate.clear()
    pool = InstancePool([instance], max_queue=16)
    pool.start()
    try:
        first = pool.submit({"x": np.full((1, 4), -1, np.float32)})
        assert instance.entered.wait(5)
        waiting = [pool.submit({"x": np.full((1, 4), i, np.float32)}) for i in range(10)]
        instance.gate.set()
        first.result(timeout=5)
        for f in waiting:
            f.result(timeout=5)
    finally:
        pool.stop()
    order = [int(seen[0, 0]) for seen in instance.seen]
    assert order == [-1, *range(10)]


def test_pool_queue_is_bounded(tmp_path):
    (instance,) = _unsafe_instances(tmp_path, 1)
    instance.gate.clear()
    pool = InstancePool([instance], max_queue=1)
    pool.start()
    x = {"x": np.zeros((1, 4), np.float32)}
    try:
        running = pool.submit(x)
        assert instance.entered.wait(5)
        queued = pool.submit(x)
        with pytest.raises(QueueFull):
            pool.submit(x)
        instance.gate.set()
        running.result(timeout=5)
        queued.result(timeout=5)
    finally:
        instance.gate.set()
        pool.stop()


def test_pool_refuses_the_same_instance_twice(tmp_path):
    (instance,) = _unsafe_instances(tmp_path, 1)
    with pytest.raises(ValueError, match="distinct"):
        InstancePool([instance, instance])
