"""The in-process ceiling: decode + inference, overlapped on two threads, no HTTP at all.

What any server on this machine could reach at best with this model and this image:
two threads, each decoding the JPEG with batchserve's `ImageCodec` and running batch 1
on its own one-thread ONNX Runtime session (decode of one overlaps inference of the
other). The lone-request latency is one image at a time on one two-thread session.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from common import image_codec, ort_session


def ceiling(jpeg: bytes, duration: float, warmup: float) -> dict[str, float]:
    codec = image_codec()
    pair = [ort_session(1), ort_session(1)]
    name = pair[0].get_inputs()[0].name
    done: list[list[float]] = [[], []]
    end = [float("inf")]

    def loop(i: int) -> None:
        while time.perf_counter() < end[0]:
            pair[i].run(None, {name: codec.decode(jpeg)})
            done[i].append(time.perf_counter())

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(2)]
    start = time.perf_counter()
    begin = start + warmup
    end[0] = begin + duration
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(warmup + duration + 60)
    count = sum(1 for times in done for t in times if begin <= t <= end[0])

    one = ort_session(2)
    one.run(None, {name: codec.decode(jpeg)})
    latencies = []
    stop = time.perf_counter() + min(duration, 5.0)
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        one.run(None, {name: codec.decode(jpeg)})
        latencies.append(time.perf_counter() - t0)
    ms = np.asarray(latencies) * 1000.0
    return {
        "throughput": count / duration,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }
