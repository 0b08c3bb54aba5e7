from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from batchserve.errors import (
    DeadlineExceeded,
    InvalidInput,
    QueueFull,
    SchedulerStopped,
)
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.scheduling import DynamicBatcher
from tests import onnx_builders
from tests.scheduling.instances import ObservedInstance


def _wait_until(predicate, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


def test_batched_equals_unbatched_under_64_submitters_with_mixed_shapes(seqsum):
    observed = ObservedInstance(seqsum, delay_s=0.002)
    batches: list[int] = []
    batcher = DynamicBatcher(
        [observed, observed], max_batch_size=8, on_batch=lambda rows, s: batches.append(rows)
    )
    batcher.start()
    rng = np.random.default_rng(1)
    requests = [
        rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 6)), 2)).astype(
            np.float32
        )
        for _ in range(640)
    ]
    try:
        with ThreadPoolExecutor(64) as pool:
            results = list(
                pool.map(lambda x: batcher.submit({"x": x}).result(timeout=30), requests)
            )
    finally:
        batcher.stop()
    for x, result in zip(requests, results, strict=True):
        expected = seqsum.run({"x": x})["y"]
        assert result.outputs["y"].shape == expected.shape
        np.testing.assert_allclose(result.outputs["y"], expected, rtol=1e-5, atol=1e-6)
    assert sum(batches) == sum(x.shape[0] for x in requests)
    assert max(batches) > 1, "under load some batches must hold several requests"
    assert max(batches) <= 8
    # Only same-shape inputs were stacked: every call saw one sequence length.
    assert all(seen.ndim == 3 for seen in observed.seen)


def test_idle_batcher_runs_a_lone_request_at_once(linear):
    batcher = DynamicBatcher([linear], max_batch_size=32, max_delay_s=0.0)
    batcher.start()
    try:
        result = batcher.submit({"x": np.ones((1, 4), np.float32)}).result(timeout=5)
    finally:
        batcher.stop()
    assert result.batch_size == 1
    assert result.queue_s < 0.2  # no timer: an idle worker takes it straight away


def test_max_delay_waits_for_a_fuller_batch(linear):
    batcher = DynamicBatcher([linear], max_batch_size=4, max_delay_s=0.3)
    batcher.start()
    try:
        first = batcher.submit({"x": np.ones((1, 4), np.float32)})
        time.sleep(0.05)
        second = batcher.submit({"x": np.ones((1, 4), np.float32)})
        a, b = first.result(timeout=5), second.result(timeout=5)
    finally:
        batcher.stop()
    assert a.batch_size == b.batch_size == 2
    assert a.queue_s >= 0.25


def test_batches_form_while_the_runtime_is_busy(linear):
    observed = ObservedInstance(linear)
    observed.gate.clear()
    batcher = DynamicBatcher([observed], max_batch_size=8)
    batcher.start()
    try:
        first = batcher.submit({"x": np.zeros((1, 4), np.float32)})
        assert observed.entered.wait(5)
        rest = [batcher.submit({"x": np.full((1, 4), i, np.float32)}) for i in range(5)]
        observed.gate.set()
        assert first.result(timeout=5).batch_size == 1
        assert [f.result(timeout=5).batch_size for f in rest] == [5] * 5
    finally:
        batcher.stop()
    assert observed.calls == [1, 5]


def test_full_queue_refuses_at_once(linear):
    observed = ObservedInstance(linear)
    observed.gate.clear()
    batcher = DynamicBatcher([observed], max_batch_size=1, max_queue=2)
    batcher.start()
    x = {"x": np.zeros((1, 4), np.float32)}
    try:
        running = batcher.submit(x)
        assert observed.entered.wait(5)
        queued = [batcher.submit(x), batcher.submit(x)]
        started = time.monotonic()
        with pytest.raises(QueueFull):
            batcher.submit(x)
        assert time.monotonic() - started < 0.5
        observed.gate.set()
        for f in [running, *queued]:
            f.result(timeout=5)
    finally:
        observed.gate.set()
        batcher.stop()


def test_expired_request_fails_and_never_runs(linear):
    observed = ObservedInstance(linear)
    observed.gate.clear()
    batcher = DynamicBatcher([observed], max_batch_size=4)
    batcher.start()
    try:
        blocker = batcher.submit({"x": np.zeros((1, 4), np.float32)})
        assert observed.entered.wait(5)
        doomed = batcher.submit(
            {"x": np.full((1, 4), 7, np.float32)}, deadline=time.monotonic() + 0.05
        )
        time.sleep(0.1)
        observed.gate.set()
        blocker.result(timeout=5)
        with pytest.raises(DeadlineExceeded):
            doomed.result(timeout=5)
    finally:
        batcher.stop()
    assert not any((seen == 7).all() for seen in observed.seen)


def test_cancelled_request_is_dropped(linear):
    observed = ObservedInstance(linear)
    observed.gate.clear()
    batcher = DynamicBatcher([observed], max_batch_size=4)
    batcher.start()
    try:
        blocker = batcher.submit({"x": np.zeros((1, 4), np.float32)})
        assert observed.entered.wait(5)
        cancelled = batcher.submit({"x": np.full((1, 4), 9, np.float32)})
        kept = batcher.submit({"x": np.ones((1, 4), np.float32)})
        assert cancelled.cancel()
        observed.gate.set()
        blocker.result(timeout=5)
        kept.result(timeout=5)
    finally:
        batcher.stop()
    assert observed.calls == [1, 1]
    assert not any((seen == 9).all() for seen in observed.seen)


def test_one_bad_input_fails_alone(lookup):
    observed = ObservedInstance(lookup)
    observed.gate.clear()
    batcher = DynamicBatcher([observed], max_batch_size=8)
    batcher.start()
    try:
        blocker = batcher.submit({"idx": np.array([[0]], np.int64)})
        assert observed.entered.wait(5)
        good = [batcher.submit({"idx": np.array([[i]], np.int64)}) for i in (1, 2, 3)]
        bad = batcher.submit({"idx": np.array([[99]], np.int64)})
        more = batcher.submit({"idx": np.array([[4]], np.int64)})
        observed.gate.set()
        blocker.result(timeout=5)
        for i, f in zip((1, 2, 3, 4), [*good, more], strict=True):
            np.testing.assert_array_equal(f.result(timeout=5).outputs["y"], [[[2 * i, 2 * i + 1]]])
        with pytest.raises(InvalidInput) as excinfo:
            bad.result(timeout=5)
    finally:
        batcher.stop()
    assert "99" in str(excinfo.value) or "out of" in str(excinfo.value)
    # The batch of five failed once, then each ran alone.
    assert observed.calls[:2] == [1, 5]
    assert observed.calls[2:] == [1, 1, 1, 1, 1]


def test_stop_drains_accepted_work_and_refuses_new(linear):
    observed = ObservedInstance(linear, delay_s=0.01)
    batcher = DynamicBatcher([observed], max_batch_size=2)
    batcher.start()
    futures = [batcher.submit({"x": np.full((1, 4), i, np.float32)}) for i in range(10)]
    stopper = threading.Thread(target=batcher.stop, kwargs={"drain": True})
    stopper.start()
    _wait_until(lambda: batcher._queue._closed)
    with pytest.raises(SchedulerStopped):
        batcher.submit({"x": np.zeros((1, 4), np.float32)})
    stopper.join(10)
    assert all(f.result(timeout=1).outputs["y"].shape == (1, 3) for f in futures)


def test_stop_without_drain_fails_queued_work(linear):
    observed = ObservedInstance(linear)
    observed.gate.clear()
    batcher = DynamicBatcher([observed], max_batch_size=1)
    batcher.start()
    running = batcher.submit({"x": np.zeros((1, 4), np.float32)})
    assert observed.entered.wait(5)
    queued = batcher.submit({"x": np.zeros((1, 4), np.float32)})
    threading.Timer(0.1, observed.gate.set).start()
    batcher.stop(drain=False)
    running.result(timeout=5)
    with pytest.raises(SchedulerStopped):
        queued.result(timeout=5)


def test_inputs_disagreeing_on_batch_size_are_refused(linear):
    batcher = DynamicBatcher([linear], max_batch_size=4)
    with pytest.raises(InvalidInput):
        batcher.submit({"x": np.zeros((2, 4), np.float32), "z": np.zeros((3, 4), np.float32)})


def test_a_lone_request_runs_on_the_wide_instance_and_load_on_the_narrow_ones(linear, tmp_path):
    path = onnx_builders.linear_model(tmp_path / "w.onnx")
    narrow = ObservedInstance(linear)
    wide = ObservedInstance(load_instance("onnx", path, RuntimeOptions(intra_op_threads=2)))
    batcher = DynamicBatcher([narrow, narrow], max_batch_size=4, wide_instance=wide)
    batcher.start()
    try:
        batcher.submit({"x": np.ones((1, 4), np.float32)}).result(timeout=5)
        assert (wide.calls, narrow.calls) == ([1], [])
        wide.gate.clear()
        wide.entered.clear()
        held = batcher.submit({"x": np.ones((1, 4), np.float32)})
        assert wide.entered.wait(5)
        # another worker is busy now: the next request runs narrow, beside it
        beside = batcher.submit({"x": np.full((1, 4), 2, np.float32)}).result(timeout=5)
        assert narrow.calls == [1]
        expected = onnx_builders.linear_reference(np.full((1, 4), 2, np.float32))
        np.testing.assert_allclose(beside.outputs["y"], expected, rtol=1e-5)
        wide.gate.set()
        held.result(timeout=5)
    finally:
        wide.gate.set()
        batcher.stop()
    assert wide.max_active == 1


def test_queued_work_is_shared_with_an_idle_worker(linear):
    """Eight requests waiting and two idle workers: a worker takes at most its half,
    rather than all eight while the second core has nothing to do. (Which worker runs
    which half depends on when their threads start.)"""
    first, second = ObservedInstance(linear), ObservedInstance(linear)
    batcher = DynamicBatcher([first, second], max_batch_size=8)
    x = np.ones((1, 4), dtype=np.float32)
    futures = [batcher.submit({"x": x}) for _ in range(8)]  # queued before any worker runs
    batcher.start()
    try:
        for future in futures:
            future.result(timeout=5)
    finally:
        batcher.stop()
    calls = first.calls + second.calls
    assert sum(calls) == 8
    assert max(calls) == 4, calls
