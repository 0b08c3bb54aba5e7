"""The server's resident memory during a step: from its Prometheus metrics, or from /proc.

A server that exposes ``process_resident_memory_bytes`` (batchserve, anything using
prometheus_client's process collector) is read over HTTP, so the bench needs no
access to the server's process. A server without metrics, or one made of many
processes (gunicorn workers, Ray's actors), is read from /proc when its PID is known:
the resident memory of the process and all its descendants, summed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

RSS_METRIC = "process_resident_memory_bytes"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MemoryProbe(Protocol):
    """Something that can tell the server's resident memory now, or None if it cannot."""

    description: str

    def read(self) -> int | None: ...


class PrometheusMemory:
    """``process_resident_memory_bytes`` scraped from a metrics URL (summed over series)."""

    def __init__(
        self, url: str, headers: Sequence[tuple[str, str]] = (), timeout: float = 2.0
    ) -> None:
        self.url = url
        self.description = f"{RSS_METRIC} from {url}"
        self._client = httpx.Client(headers=dict(headers), timeout=timeout)

    def read(self) -> int | None:
        try:
            response = self._client.get(self.url)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return rss_from_metrics(response.text)

    def close(self) -> None:
        self._client.close()


def rss_from_metrics(text: str) -> int | None:
    """The resident memory in a Prometheus text exposition, None when it is absent.

    Only the metric's own lines are parsed: a server's whole exposition (histograms by
    model and route) costs milliseconds of Python to parse, and this runs once a second
    in the load generator's process, where every millisecond is taken from the server.
    """
    lines = "\n".join(line for line in text.splitlines() if line.startswith(RSS_METRIC))
    total: float | None = None
    try:
        for family in text_string_to_metric_families(lines + "\n"):
            for sample in family.samples:
                if sample.name == RSS_METRIC:
                    total = (total or 0.0) + sample.value
    except ValueError:  # not a Prometheus exposition at all
        return None
    return None if total is None else int(total)


class ProcessTreeMemory:
    """The summed resident memory of a process and its descendants, read from /proc."""

    def __init__(self, pid: int, proc: Path = Path("/proc")) -> None:
        self.pid = pid
        self.description = f"resident memory of process {pid} and its children (/proc)"
        self._proc = proc

    def read(self) -> int | None:
        total = 0
        found = False
        for pid in process_tree(self.pid, self._proc):
            try:
                resident_pages = int((self._proc / str(pid) / "statm").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # it exited between the listing and the read
            total += resident_pages * _PAGE_SIZE
            found = True
        return total if found else None


def process_tree(root: int, proc: Path = Path("/proc")) -> list[int]:
    """`root` and every process descended from it, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


class MemorySampler:
    """Reads a probe about once a second on a thread while a step runs; keeps last and peak.

    On its own thread so that a slow scrape never delays the load generator's loop.
    """

    def __init__(self, probe: MemoryProbe | None, interval: float = 1.0) -> None:
        self.probe = probe
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: int | None = None
        self.peak: int | None = None

    def _sample(self) -> None:
        assert self.probe is not None
        value = self.probe.read()
        if value is not None:
            self.last = value
            self.peak = value if self.peak is None else max(self.peak, value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self.last = self.peak = None
        if self.probe is None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)
        self._thread.start()

    def stop(self) -> tuple[int | None, int | None]:
        """Stop sampling, take one last reading, and return (last, peak) in bytes."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(5)
            self._thread = None
        if self.probe is not None:
            self._sample()
        return self.last, self.peak
