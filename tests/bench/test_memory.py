"""Server memory: Prometheus' process_resident_memory_bytes, and a process tree from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from batchserve.bench.memory import (
    MemorySampler,
    ProcessTreeMemory,
    process_tree,
    rss_from_metrics,
)


def _own_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rss_is_read_from_a_real_exposition():
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    text = generate_latest(registry).decode()
    assert rss_from_metrics(text) == pytest.approx(_own_rss(), rel=0.2)


def test_missing_metric_or_garbage_gives_none():
    assert rss_from_metrics("# HELP up ok\n# TYPE up gauge\nup 1\n") is None
    assert rss_from_metrics("<html>not metrics</html>") is None


def test_series_of_several_processes_are_summed():
    text = (
        'process_resident_memory_bytes{worker="0"} 1.0e+08\n'
        'process_resident_memory_bytes{worker="1"} 5.0e+07\n'
    )
    assert rss_from_metrics(text) == 150_000_000


@pytest.fixture
def child_holding_memory():
    code = "import sys, time; x = b'1' * 80_000_000; print('ok', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ok"
    yield child
    child.kill()
    child.wait(10)


def test_process_tree_sums_the_children(child_holding_memory):
    assert child_holding_memory.pid in process_tree(os.getpid())
    tree = ProcessTreeMemory(os.getpid()).read()
    alone = ProcessTreeMemory(child_holding_memory.pid).read()
    assert alone is not None and alone > 80_000_000
    assert tree is not None and tree >= alone + _own_rss() * 0.8


def test_sampler_keeps_the_peak():
    sampler = MemorySampler(ProcessTreeMemory(os.getpid()), interval=0.05)
    sampler.start()
    ballast = b"1" * 60_000_000  # touched pages: resident, unlike a fresh bytearray
    time.sleep(0.3)
    del ballast
    last, peak = sampler.stop()
    assert last is not None and peak is not None
    assert peak - last > 40_000_000
    assert MemorySampler(None).stop() == (None, None)
