"""The server's CPU per request: user + system seconds of its process tree over a window.

Read from /proc/<pid>/stat (utime, stime, and cutime/cstime for children it reaped),
summed over the server and its descendants (Gunicorn's workers, LitServe's, Ray's
actors), so no dependency is needed. A process that appears during the window counts
from zero; one that was there at its start counts by its difference.

With `batchserve bench`'s generator the window is its measuring window: the closed
loop sets `StepProgress.measuring` when the window opens, which `StepCpuMeter` watches
on a thread, and the window lasts the step's duration. With wrk it is the measured
run itself (`wrk_runner.wrk_step`'s `on_measure`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from batchserve.bench.loadgen import StepProgress
from batchserve.bench.memory import process_tree

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: How often the meter looks for the window's opening: its error on the window's start.
POLL_S = 0.005


def process_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float | None:
    """utime + stime + cutime + cstime of one process, in seconds; None once it is gone."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # After the parenthesised command name: state is field 3, utime field 14 (index 11 here).
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return sum(int(v) for v in fields[11:15]) / _TICKS
    except (IndexError, ValueError):
        return None


def tree_cpu(root: int, proc: Path = Path("/proc")) -> dict[int, float]:
    """CPU seconds by PID for `root` and every descendant."""
    out = {}
    for pid in process_tree(root, proc):
        seconds = process_cpu_seconds(pid, proc)
        if seconds is not None:
            out[pid] = seconds
    return out


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """The tree's CPU seconds spent between two `tree_cpu` snapshots."""
    return sum(max(0.0, seconds - before.get(pid, 0.0)) for pid, seconds in after.items())


class StepCpuMeter:
    """The server tree's CPU over one step's window; `start` before the step, `stop` after.

    Either driven by hand (`open`/`close`, as around a wrk run) or, given the
    `progress` the closed loop updates, opened when `progress.measuring` turns true
    and closed `duration` seconds later, on a thread of its own.
    """

    def __init__(self, pid: int, proc: Path = Path("/proc")) -> None:
        self.pid = pid
        self._proc = proc
        self._before: dict[int, float] | None = None
        self._seconds: float | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()

    def open(self) -> None:
        self._before, self._seconds = tree_cpu(self.pid, self._proc), None

    def close(self) -> None:
        if self._before is not None:
            self._seconds = cpu_between(self._before, tree_cpu(self.pid, self._proc))
            self._before = None

    def watch(self, progress: StepProgress, duration: float) -> None:
        """Open when the loop starts measuring, close `duration` later (a thread)."""
        progress.measuring = False  # the previous step's flag: the loop resets it late
        self._seconds = None
        self._cancel.clear()

        def run() -> None:
            while not progress.measuring:
                if self._cancel.wait(POLL_S):
                    return
            self.open()
            if not self._cancel.wait(duration):
                self.close()

        self._thread = threading.Thread(target=run, name="server-cpu", daemon=True)
        self._thread.start()

    def seconds(self, wait: float = 5.0) -> float | None:
        """The window's CPU seconds, None if it never opened (waits for a watch to end)."""
        if self._thread is not None:
            self._thread.join(wait)
            if self._thread.is_alive():
                self._cancel.set()
            self._thread = None
        return self._seconds

    def per_request_us(self, requests: int) -> float | None:
        seconds = self.seconds()
        return None if seconds is None or requests <= 0 else seconds / requests * 1e6
