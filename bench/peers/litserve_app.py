"""LitServe serving the benchmark ONNX model, configured as its documentation says for CPU.

    python bench/peers/litserve_app.py --port PORT --workers 2 --batch 8 --threads 1

LitServe parses request bodies as JSON (or forms), so the image comes base64 in
``{"image_b64": ...}``. ``fast_queue`` (ZeroMQ) is on, as the docs advise past
100 requests/s; ``workers_per_device`` is the inference processes (the docs: the
number of cores for CPU); ``--batch N`` turns on LitServe's batching with
``batch_timeout`` (seconds) waiting for a batch to fill. ``--route tensor`` serves
``/tensor`` instead, taking ``{"tensor_b64": ...}``: the raw float32 bytes of the
input tensor in base64 (LitServe reads only JSON or forms, so no raw body).
"""

from __future__ import annotations

import argparse
import base64

import litserve as ls
import numpy as np
from common import image_codec, ort_session, tensor_from_bytes, top_k


class MobileNetAPI(ls.LitAPI):
    """decode (base64 JPEG -> tensor), predict (ORT), encode (top-5), batched or not."""

    def __init__(self, threads: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.threads = threads

    def setup(self, device: str) -> None:
        self.session = ort_session(self.threads)
        self.codec = image_codec()
        self.input = self.session.get_inputs()[0].name

    def decode_request(self, request: dict) -> np.ndarray:
        if "tensor_b64" in request:
            return tensor_from_bytes(base64.b64decode(request["tensor_b64"]))
        return self.codec.decode(base64.b64decode(request["image_b64"]))

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(output)

    def encode_response(self, output: np.ndarray) -> dict:
        return {"predictions": top_k(output)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1, help="1: no batching")
    parser.add_argument("--batch-timeout", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads")
    parser.add_argument("--route", choices=["image", "tensor"], default="image")
    args = parser.parse_args()
    batching = {"max_batch_size": args.batch, "batch_timeout": args.batch_timeout}
    path = "/tensor" if args.route == "tensor" else "/predict"
    api = MobileNetAPI(args.threads, api_path=path, **(batching if args.batch > 1 else {}))
    server = ls.LitServer(
        api, accelerator="cpu", workers_per_device=args.workers, fast_queue=True, timeout=60
    )
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
