from __future__ import annotations

from pathlib import Path

import pytest

from batchserve.config import SchedulerConfig
from batchserve.errors import ConfigError
from batchserve.machine import CPUS_ENV
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.scheduling import DynamicBatcher, InstancePool, SharedInstance
from batchserve.scheduling.factory import build_scheduler
from batchserve.scheduling.layout import Layout, LayoutChoice, choose_layout
from tests import onnx_builders


@pytest.fixture
def linear_path(tmp_path: Path) -> Path:
    return onnx_builders.linear_model(tmp_path / "linear.onnx")


def _maker(path: Path, safe: bool | None = None):
    def make(threads: int):
        instance = load_instance("onnx", path, RuntimeOptions(intra_op_threads=threads))
        if safe is not None:
            instance.concurrency_safe = safe
        return instance

    return make


def test_auto_layout_measures_candidates_and_caches_the_choice(linear_path, tmp_path):
    make = _maker(linear_path)
    specs = make(1).inputs
    kwargs = dict(
        make_instance=make,
        specs=specs,
        concurrency_safe=True,
        workers=[1, 2],
        threads=None,
        batch_sizes=[1, 4, 16],
        budget_s=0.6,
        cache_key="linear-test",
        cache_dir=tmp_path / "cache",
    )
    first = choose_layout(**kwargs)
    assert not first.from_cache
    assert len(first.measured) == 6
    assert all(m.throughput and m.throughput > 0 for m in first.measured)
    best = max(m.throughput for m in first.measured)
    assert first.layout.throughput >= 0.95 * best
    # the smallest batch within 95 % of the best wins
    assert all(
        m.max_batch_size >= first.layout.max_batch_size
        for m in first.measured
        if m.throughput >= 0.95 * best
    )
    second = choose_layout(**kwargs)
    assert second.from_cache
    assert second.layout == first.layout


def test_explicit_config_is_not_profiled(linear_path, tmp_path):
    built = build_scheduler(
        SchedulerConfig(kind="batch", instances=2, threads=1, max_batch_size=8),
        make_instance=_maker(linear_path),
        specs=_maker(linear_path)(1).inputs,
        concurrency_safe=True,
        name="linear",
        cache_dir=tmp_path,
    )
    assert built.profile is None
    assert isinstance(built.scheduler, DynamicBatcher)
    assert (built.layout.workers, built.layout.threads, built.layout.max_batch_size) == (2, 1, 8)


def test_auto_kind_picks_shared_for_safe_and_pool_for_unsafe(linear_path, tmp_path):
    config = SchedulerConfig(kind="auto", instances=2, threads=1, max_batch_size=1)
    specs = _maker(linear_path)(1).inputs
    safe = build_scheduler(
        config, make_instance=_maker(linear_path), specs=specs, concurrency_safe=True, name="a"
    )
    unsafe = build_scheduler(
        config,
        make_instance=_maker(linear_path, safe=False),
        specs=specs,
        concurrency_safe=False,
        name="b",
    )
    assert isinstance(safe.scheduler, SharedInstance)
    assert isinstance(unsafe.scheduler, InstancePool)


def test_shared_kind_on_an_unsafe_model_is_a_config_error(linear_path):
    with pytest.raises(ConfigError, match="not safe"):
        build_scheduler(
            SchedulerConfig(kind="shared"),
            make_instance=_maker(linear_path, safe=False),
            specs=_maker(linear_path)(1).inputs,
            concurrency_safe=False,
            name="c",
        )


def test_the_layout_is_sized_to_the_cores_a_ray_replica_is_given(linear_path, monkeypatch):
    make = _maker(linear_path)

    def threads_per_worker(workers: int) -> int:
        kwargs = dict(make_instance=make, specs=make(1).inputs, concurrency_safe=True)
        choice = choose_layout(**kwargs, workers=[workers], threads=None, batch_sizes=[1])
        return choice.layout.threads

    monkeypatch.setenv(CPUS_ENV, "6")  # what a replica with num_cpus: 6 sets
    assert threads_per_worker(1) == 6
    assert threads_per_worker(2) == 3


def _profiled(wide_rate: float, narrow_rate: float) -> LayoutChoice:
    """A 2-core profile: one 2-thread worker at `wide_rate`, two 1-thread ones at
    `narrow_rate` rows/s together (the figures MobileNet v1 and the demo model gave)."""
    measured = (Layout(1, 2, 1, wide_rate), Layout(2, 1, 1, narrow_rate), Layout(2, 1, 2, 1.0))
    return LayoutChoice(Layout(2, 1, 1, narrow_rate), measured, from_cache=False)


def test_the_wide_instance_serves_lone_requests_only_where_it_is_faster():
    assert _profiled(wide_rate=169.0, narrow_rate=216.0).lone_request_faster_on(2)  # MobileNet
    assert not _profiled(wide_rate=2184.0, narrow_rate=5644.0).lone_request_faster_on(2)  # demo
    unmeasured = LayoutChoice(Layout(2, 1, 1), (), from_cache=False)
    assert unmeasured.lone_request_faster_on(2)
