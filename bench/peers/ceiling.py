"""The in-process ceiling: decode + inference, overlapped on two threads, no HTTP at all.

What any server on this machine could reach at best with this model and this image:
two threads, each decoding the JPEG (with the peers' codec, `common.image_codec`: the
frozen hand-written decode by default) and running batch 1 on its own one-thread ONNX
Runtime session (decode of one overlaps inference of the other). The lone-request
latency is one image at a time on one two-thread session. With `route="tensor"` the
decode is left out: inference alone on the tensor that `/tensor` routes receive.
"""

from __future__ import annotations

import resource
import threading
import time
from typing import Literal

import numpy as np
from common import image_codec, ort_session, tensor_from_bytes


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ceiling(
    body: bytes,
    duration: float,
    warmup: float,
    route: Literal["image", "tensor"] = "image",
    codec: str | None = None,
) -> dict[str, float]:
    """Images (or tensors) a second on two threads, the lone-image p50/p99, and this
    process's CPU per image over the whole run (warm-up included)."""
    if route == "tensor":

        def prepare(data: bytes) -> np.ndarray:
            return tensor_from_bytes(data)

    else:
        prepare = image_codec(codec).decode
    pair = [ort_session(1), ort_session(1)]
    name = pair[0].get_inputs()[0].name
    done: list[list[float]] = [[], []]
    end = [float("inf")]

    def loop(i: int) -> None:
        while time.perf_counter() < end[0]:
            pair[i].run(None, {name: prepare(body)})
            done[i].append(time.perf_counter())

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(2)]
    cpu_before = _cpu_s()
    start = time.perf_counter()
    begin = start + warmup
    end[0] = begin + duration
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(warmup + duration + 60)
    cpu = _cpu_s() - cpu_before
    count = sum(1 for times in done for t in times if begin <= t <= end[0])
    total = sum(len(times) for times in done)

    one = ort_session(2)
    one.run(None, {name: prepare(body)})
    latencies = []
    stop = time.perf_counter() + min(duration, 5.0)
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        one.run(None, {name: prepare(body)})
        latencies.append(time.perf_counter() - t0)
    ms = np.asarray(latencies) * 1000.0
    return {
        "throughput": count / duration,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "cpu_us_per_request": cpu / total * 1e6 if total else float("nan"),
    }
