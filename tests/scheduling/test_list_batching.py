"""Schedulers over "list" instances (Python models): each request is one opaque value,
any requests share a call, and the call returns one result per value."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchserve.config import SchedulerConfig
from batchserve.errors import ConfigError, InferenceError
from batchserve.machine import cpu_count
from batchserve.repository.loader import read_config, runtime_options
from batchserve.runtimes import ModelInstance, get_runtime
from batchserve.scheduling import DynamicBatcher, InstancePool
from batchserve.scheduling.batching import ListBatching
from batchserve.scheduling.factory import LIST_BATCH, LIST_WORKERS, build_scheduler
from tests.runtimes.python_models import write_model
from tests.scheduling.instances import ObservedListInstance

#: Answers what each value is; fails on the value "bad"; `Short` breaks the contract.
DESCRIBER = """
class Describer:
    def predict(self, inputs):
        if "bad" in inputs:
            raise ValueError("'bad' is not a value this model takes")
        return [f"{type(v).__name__}:{v!r}" for v in inputs]


class Short(Describer):
    def predict(self, inputs):
        return super().predict(inputs)[1:]
"""


def python_instance(tmp_path: Path, cls: str = "Describer") -> ModelInstance:
    folder = write_model(tmp_path, cls.lower(), DESCRIBER, cls)
    config = read_config(folder / "model.yaml")
    runtime = get_runtime("python")
    return runtime.load(folder / "1", runtime_options(config, runtime, None, folder))


def held(
    instance: ModelInstance, max_batch_size: int = 8
) -> tuple[DynamicBatcher, ObservedListInstance]:
    observed = ObservedListInstance(instance)
    batcher = DynamicBatcher([observed], max_batch_size=max_batch_size, batching=ListBatching())
    batcher.start()
    return batcher, observed


def run_held(batcher: DynamicBatcher, observed: ObservedListInstance, values: list) -> list:
    """The first value holds the worker; the rest queue, then run as batches."""
    observed.gate.clear()
    first = batcher.submit(values[0])
    assert observed.entered.wait(5)
    rest = [batcher.submit(v) for v in values[1:]]
    observed.gate.set()
    return [f.exception(timeout=10) or f.result().outputs for f in [first, *rest]]


def test_values_of_any_kind_share_a_batch_and_each_gets_its_own_result(tmp_path) -> None:
    batcher, observed = held(python_instance(tmp_path))
    values = [0, "text", {"a": [1, 2]}, None, 2.5, [3], b"raw"]
    try:
        results = run_held(batcher, observed, values)
    finally:
        batcher.stop()
    assert [len(call) for call in observed.calls] == [1, 6]  # no shapes, no keys: one batch
    assert results == [f"{type(v).__name__}:{v!r}" for v in values]


def test_a_batch_holds_at_most_max_batch_size_values(tmp_path) -> None:
    batcher, observed = held(python_instance(tmp_path), max_batch_size=3)
    try:
        results = run_held(batcher, observed, list(range(8)))
    finally:
        batcher.stop()
    assert [len(call) for call in observed.calls] == [1, 3, 3, 1]
    assert results == [f"int:{i}" for i in range(8)]


def test_a_bad_value_fails_alone_with_the_models_message(tmp_path) -> None:
    batcher, observed = held(python_instance(tmp_path))
    try:
        results = run_held(batcher, observed, ["first", "a", "bad", "b"])
    finally:
        batcher.stop()
    assert [len(call) for call in observed.calls] == [1, 3, 1, 1, 1]  # retried one by one
    assert results[0] == "str:'first'" and results[1] == "str:'a'" and results[3] == "str:'b'"
    assert isinstance(results[2], InferenceError)
    assert str(results[2]) == "Describer.predict: ValueError: 'bad' is not a value this model takes"


def test_a_broken_contract_fails_every_request_with_a_clear_error(tmp_path) -> None:
    batcher, observed = held(python_instance(tmp_path, "Short"))
    try:
        results = run_held(batcher, observed, ["x", "y", "z"])
    finally:
        batcher.stop()
    assert all(isinstance(r, InferenceError) for r in results)
    assert "Short.predict broke its contract: it returned 0 results for 1 inputs" in str(results[0])


def test_list_batching_checks_the_contract_of_any_list_instance() -> None:
    batching = ListBatching()
    assert batching.admit({"anything": object()}) == batching.admit(None)
    with pytest.raises(InferenceError, match="returned 1 results for 2 inputs"):
        batching.separate(["one"], ["a", "b"], [1, 1])
    with pytest.raises(InferenceError, match="returned a dict"):
        batching.separate({"y": 1}, ["a"], [1])


def test_the_factory_lays_a_list_model_out_without_profiling(tmp_path) -> None:
    made: list[ModelInstance] = []

    def make(threads: int) -> ModelInstance:
        made.append(python_instance(tmp_path / str(len(made))))
        return made[-1]

    built = build_scheduler(
        SchedulerConfig(),
        make_instance=make,
        specs=(),
        concurrency_safe=False,
        batch_format="list",
        name="listy",
    )
    assert isinstance(built.scheduler, DynamicBatcher)
    assert built.profile is None and len(made) == LIST_WORKERS  # nothing was measured
    assert (built.layout.workers, built.layout.max_batch_size) == (LIST_WORKERS, LIST_BATCH)
    built.scheduler.start()
    try:
        assert built.scheduler.submit("v").result(timeout=5).outputs == "str:'v'"
    finally:
        built.scheduler.stop()

    explicit = build_scheduler(
        SchedulerConfig(instances=2, max_batch_size=4),
        make_instance=make,
        specs=(),
        concurrency_safe=False,
        batch_format="list",
        name="listy",
    )
    assert (explicit.layout.workers, explicit.layout.max_batch_size) == (2, 4)
    pool = build_scheduler(
        SchedulerConfig(kind="pool"),
        make_instance=make,
        specs=(),
        concurrency_safe=False,
        batch_format="list",
        name="listy",
    )
    assert isinstance(pool.scheduler, InstancePool) and pool.layout.max_batch_size == 1
    assert pool.layout.threads == cpu_count()
    with pytest.raises(ConfigError, match=r"scheduler\.pad pads tensors"):
        build_scheduler(
            SchedulerConfig(pad=True),
            make_instance=make,
            specs=(),
            concurrency_safe=False,
            batch_format="list",
            name="listy",
        )
