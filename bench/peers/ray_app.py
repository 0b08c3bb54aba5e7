"""Ray Serve serving the benchmark ONNX model, as its documentation shows for CPU models.

    python bench/peers/ray_app.py --port PORT --replicas 2 --batch 8 --threads 1

One deployment of `--replicas` replicas (one CPU each) behind Serve's HTTP proxy on
127.0.0.1. The handler reads the raw JPEG body (on `/tensor`: the raw float32 bytes
of the input tensor, no decode); with `--batch N` it goes through
``@serve.batch(max_batch_size=N, batch_wait_timeout_s=...)`` and one ORT call per
batch, with ``max_ongoing_requests`` raised above the batch size as the batching
guide asks. A local Ray cluster is started with two CPUs and no dashboard, and is
shut down on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import numpy as np
import ray
from common import image_codec, ort_session, tensor_from_bytes, top_k
from ray import serve
from starlette.requests import Request


def build(replicas: int, batch: int, wait_s: float, threads: int) -> serve.Application:
    options: dict = {"num_replicas": replicas, "ray_actor_options": {"num_cpus": 1}}
    if batch > 1:
        options["max_ongoing_requests"] = 2 * batch

    @serve.deployment(**options)
    class MobileNet:
        def __init__(self) -> None:
            self.session = ort_session(threads)
            self.codec = image_codec()
            self.input = self.session.get_inputs()[0].name

        def prepare(self, tensor: bool, data: bytes) -> np.ndarray:
            return tensor_from_bytes(data) if tensor else self.codec.decode(data)

        @serve.batch(max_batch_size=max(batch, 1), batch_wait_timeout_s=wait_s)
        async def classify_batch(self, bodies: list[tuple[bool, bytes]]) -> list[dict]:
            x = np.concatenate([self.prepare(*body) for body in bodies])
            logits = self.session.run(None, {self.input: x})[0]
            return [{"predictions": top_k(row)} for row in logits]

        async def __call__(self, request: Request) -> dict:
            data = await request.body()
            tensor = request.url.path.rstrip("/").endswith("/tensor")
            if batch > 1:
                return await self.classify_batch((tensor, data))
            logits = self.session.run(None, {self.input: self.prepare(tensor, data)})[0]
            return {"predictions": top_k(logits)}

    return MobileNet.bind()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1, help="1: no batching")
    parser.add_argument("--batch-wait", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024 * 1024,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build(args.replicas, args.batch, args.batch_wait, args.threads), route_prefix="/")
    print(f"ray serve ready on 127.0.0.1:{args.port}", flush=True)
    stop.wait()
    serve.shutdown()
    ray.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
