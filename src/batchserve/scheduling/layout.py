"""Pick how to lay a model out on this machine by measuring, not guessing.

A layout is how many runtime calls run at once (`workers`), how many intra-op
threads each call uses, and how many rows a batch may hold. On a 2-core CPU
two single-threaded calls beat one two-threaded call and batching gains
nothing; on a GPU batching is everything. `choose_layout` runs each candidate
for a slice of a small time budget, keeps the best, and caches the answer per
model file and machine so that the next load is instant.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from batchserve.datatypes import TensorSpec
from batchserve.machine import cpu_count
from batchserve.runtimes.base import ModelInstance
from batchserve.runtimes.synthetic import random_inputs

log = logging.getLogger(__name__)

BATCH_CANDIDATES = (1, 2, 4, 8, 16, 32)
#: The smallest batch whose throughput is within this fraction of the best wins: a
#: bigger batch costs latency and memory (two images of MobileNet: +25 MB RSS), and a
#: gain under 10 % is within the noise of a 0.5 s measurement, and was lost to the
#: decode sharing the cores when served (2 cores: batch 1 served 7 % more than 2).
GOOD_ENOUGH = 0.90
#: How much faster per call the all-cores instance must profile than a narrow worker to
#: be used for lone requests: narrow workers were measured all running at once, so they
#: read slower than one running alone would.
WIDE_MARGIN = 1.2


@dataclass(frozen=True)
class Layout:
    """How a model runs on this machine: `workers` runtime calls at once, each with
    `threads` intra-op threads, on batches of up to `max_batch_size` rows."""

    workers: int
    threads: int
    max_batch_size: int
    throughput: float | None = None  # rows per second, when measured


@dataclass(frozen=True)
class LayoutChoice:
    """The layout chosen, every candidate measured (empty when nothing was), and whether
    the answer came from the per-machine cache."""

    layout: Layout
    measured: tuple[Layout, ...]
    from_cache: bool

    def lone_request_faster_on(self, cores: int) -> bool:
        """Whether, by the profile, a lone request runs faster on one instance using all
        `cores` threads than on one of the chosen layout's narrow workers, by more than
        `WIDE_MARGIN`. A small model loses: intra-op threads cost more to coordinate
        than they save (the 64x64 demo model: 2-thread calls at 2,200/s, 1-thread
        calls at 2,800/s each). True when the profile did not measure both."""

        def rate(workers: int, threads: int) -> float | None:
            return next(
                (
                    m.throughput
                    for m in self.measured
                    if (m.workers, m.threads, m.max_batch_size) == (workers, threads, 1)
                    and m.throughput
                ),
                None,
            )

        wide = rate(1, cores)
        narrow = rate(self.layout.workers, self.layout.threads)
        if wide is None or narrow is None:
            return True
        return wide > WIDE_MARGIN * narrow / self.layout.workers


def sample_inputs(specs: Sequence[TensorSpec], rows: int) -> dict[str, np.ndarray] | None:
    """Synthetic inputs of `rows` rows, or None when a non-batch dimension is unknown."""
    shapes = {}
    for spec in specs:
        shape = spec.concrete(rows)
        if shape is None:
            return None
        shapes[spec.name] = shape
    try:
        return random_inputs(specs, shapes)
    except ValueError:
        return None


def measure(
    instances: Sequence[ModelInstance],
    inputs: Mapping[str, np.ndarray],
    seconds: float,
) -> float:
    """Closed-loop throughput in rows/s: one thread per entry of `instances`, each
    calling `run` back to back for `seconds`."""
    rows = next(iter(inputs.values())).shape[0]
    for instance in dict.fromkeys(instances):  # warm each distinct instance once
        instance.run(inputs)
    counts = [0] * len(instances)
    start_line = threading.Barrier(len(instances) + 1)
    stop_at = [0.0]

    def loop(i: int, instance: ModelInstance) -> None:
        start_line.wait()
        while True:
            instance.run(inputs)
            counts[i] += 1
            if time.perf_counter() >= stop_at[0]:
                return

    threads = [
        threading.Thread(target=loop, args=(i, inst), daemon=True)
        for i, inst in enumerate(instances)
    ]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_line.wait()
    for t in threads:
        t.join()
    return sum(counts) * rows / (time.perf_counter() - began)


def choose_layout(
    *,
    make_instance: Callable[[int], ModelInstance],
    specs: Sequence[TensorSpec],
    concurrency_safe: bool,
    workers: Sequence[int],
    threads: Sequence[int] | None,
    batch_sizes: Sequence[int],
    budget_s: float = 6.0,
    cache_key: str | None = None,
    cache_dir: Path | None = None,
) -> LayoutChoice:
    """Measure every candidate and return the best, from the cache when possible.

    `threads=None` pairs each worker count with cores // workers threads, so
    that workers x threads fills the machine without oversubscribing it.
    """
    cores = cpu_count()
    pairs = [(w, t) for w in workers for t in (threads or [max(1, cores // w)])]
    candidates = [Layout(w, t, b) for w, t in pairs for b in batch_sizes]
    if len(candidates) == 1:
        return LayoutChoice(candidates[0], (), from_cache=False)
    cache_file = _cache_file(cache_dir, cache_key, candidates)
    cached = _read_cache(cache_file)
    if cached is not None:
        return cached
    if sample_inputs(specs, 1) is None:
        fallback = Layout(max(workers), threads[0] if threads else 1, min(batch_sizes))
        log.warning("cannot profile: an input has unknown dimensions; using %s", fallback)
        return LayoutChoice(fallback, (), from_cache=False)

    slice_s = max(0.15, budget_s / len(candidates))
    measured: list[Layout] = []
    for w, t in pairs:
        if concurrency_safe:
            one = make_instance(t)
            instances = [one] * w
        else:
            instances = [make_instance(t) for _ in range(w)]
        try:
            for b in batch_sizes:
                inputs = sample_inputs(specs, b)
                assert inputs is not None
                rate = measure(instances, inputs, slice_s)
                measured.append(Layout(w, t, b, rate))
        finally:
            for instance in dict.fromkeys(instances):
                instance.close()

    best = max(layout.throughput or 0.0 for layout in measured)
    good = [m for m in measured if (m.throughput or 0.0) >= GOOD_ENOUGH * best]
    chosen = min(good, key=lambda m: (m.max_batch_size, -(m.throughput or 0.0)))
    log.info("layout profile (%d cores):\n%s\nchosen: %s", cores, format_table(measured), chosen)
    choice = LayoutChoice(chosen, tuple(measured), from_cache=False)
    _write_cache(cache_file, choice)
    return choice


def format_table(measured: Sequence[Layout]) -> str:
    lines = ["  workers threads batch   rows/s"]
    lines += [
        f"  {m.workers:7d} {m.threads:7d} {m.max_batch_size:5d} {m.throughput or 0:8.1f}"
        for m in measured
    ]
    return "\n".join(lines)


def file_fingerprint(path: Path) -> str:
    """A digest of a file's bytes, or of a folder's files (names and bytes, in order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(f"{file.relative_to(path)}\0".encode())
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:20]


def _cache_file(cache_dir: Path | None, key: str | None, candidates: list[Layout]) -> Path | None:
    if key is None:
        return None
    cache_dir = cache_dir or Path(
        os.environ.get("BATCHSERVE_CACHE_DIR", Path.home() / ".cache" / "batchserve")
    )
    machine = f"{platform.machine()}-{platform.processor()}-{cpu_count()}"
    what = json.dumps([key, machine, [asdict(c) for c in candidates]], sort_keys=True)
    name = hashlib.sha256(what.encode()).hexdigest()[:24]
    return cache_dir / "layouts" / f"{name}.json"


def _read_cache(path: Path | None) -> LayoutChoice | None:
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        measured = tuple(Layout(**m) for m in data["measured"])
        return LayoutChoice(Layout(**data["layout"]), measured, from_cache=True)
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring unreadable layout cache %s", path)
        return None


def _write_cache(path: Path | None, choice: LayoutChoice) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps(
                {"layout": asdict(choice.layout), "measured": [asdict(m) for m in choice.measured]}
            )
        )
        tmp.replace(path)
    except OSError as exc:
        log.warning("could not cache the layout in %s: %s", path, exc)
