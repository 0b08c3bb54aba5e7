"""bench/server_cpu.py: a process tree's CPU from /proc, and the step window's meter."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from server_cpu import (
    StepCpuMeter,
    cpu_between,
    process_cpu_seconds,
    tree_cpu,
)

from batchserve.bench.loadgen import StepProgress

TICKS = os.sysconf("SC_CLK_TCK")


def fake_proc(root: Path, processes: dict[int, tuple[int, tuple[int, int, int, int]]]) -> Path:
    """/proc with `pid -> (parent, (utime, stime, cutime, cstime) in ticks)`."""
    for pid, (parent, (ut, st, cut, cst)) in processes.items():
        (root / str(pid)).mkdir(parents=True, exist_ok=True)
        # A command name with spaces and a parenthesis, as /proc allows.
        (root / str(pid) / "stat").write_text(
            f"{pid} (gunicorn: worker (x)) S {parent} {pid} {pid} 0 -1 4194560 "
            f"100 0 0 0 {ut} {st} {cut} {cst} 20 0 3 0 1000 1000000 100\n"
        )
    (root / "self").mkdir(exist_ok=True)
    return root


def test_one_process_counts_user_system_and_reaped_children(tmp_path):
    proc = fake_proc(tmp_path, {10: (1, (100, 50, 7, 3))})
    assert process_cpu_seconds(10, proc) == pytest.approx(160 / TICKS)
    assert process_cpu_seconds(11, proc) is None


def test_the_tree_and_the_difference_between_snapshots(tmp_path):
    proc = fake_proc(tmp_path, {10: (1, (100, 0, 0, 0)), 11: (10, (50, 0, 0, 0)),
                                99: (1, (999, 0, 0, 0))})  # fmt: skip
    before = tree_cpu(10, proc)
    assert set(before) == {10, 11}
    fake_proc(tmp_path, {10: (1, (130, 10, 0, 0)), 12: (10, (20, 0, 0, 0))})
    (tmp_path / "11" / "stat").unlink()  # it exited: its time is lost, never negative
    (tmp_path / "11").rmdir()
    after = tree_cpu(10, proc)
    assert set(after) == {10, 12}
    assert cpu_between(before, after) == pytest.approx((40 + 20) / TICKS)


def spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_meter_opens_when_the_loop_measures_and_closes_a_duration_later():
    progress = StepProgress(measuring=True)  # left over from a previous step
    meter = StepCpuMeter(os.getpid())
    meter.watch(progress, duration=0.3)
    spin(0.2)  # before the window: not counted
    progress.measuring = True
    worker = threading.Thread(target=spin, args=(0.25,))
    worker.start()
    worker.join()
    seconds = meter.seconds()
    assert seconds is not None and 0.1 < seconds < 1.0
    assert meter.per_request_us(100) is not None


def test_a_window_that_never_opens_has_no_figure():
    meter = StepCpuMeter(os.getpid())
    meter.watch(StepProgress(), duration=0.1)
    assert meter.seconds(wait=0.05) is None and meter.per_request_us(10) is None


def test_by_hand_around_a_run():
    meter = StepCpuMeter(os.getpid())
    meter.open()
    spin(0.1)
    meter.close()
    assert meter.seconds() == pytest.approx(0.1, abs=0.08)
