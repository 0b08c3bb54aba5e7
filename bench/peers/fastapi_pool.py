"""A hand-written FastAPI server: a pool of two single-threaded ORT sessions, no batching.

    python bench/peers/fastapi_pool.py --port PORT

What a careful user writes by hand in an afternoon: uvicorn, one process, a thread
pool of two, each thread with its own one-thread session, decode and inference off
the event loop. `/tensor` takes the raw float32 bytes of the input tensor (no decode).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import uvicorn
from common import image_codec, ort_session, tensor_from_bytes, top_k
from fastapi import FastAPI, Request

WORKERS = 2
local = threading.local()
codec = image_codec()
pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="infer")
app = FastAPI()


def infer(x: np.ndarray) -> list[dict[str, float | int]]:
    if not hasattr(local, "session"):
        local.session = ort_session(1)
        local.input = local.session.get_inputs()[0].name
    return top_k(local.session.run(None, {local.input: x})[0])


def classify(data: bytes) -> list[dict[str, float | int]]:
    return infer(codec.decode(data))


def classify_tensor(data: bytes) -> list[dict[str, float | int]]:
    return infer(tensor_from_bytes(data))


@app.post("/predict")
async def predict(request: Request) -> dict:
    data = await request.body()
    return {"predictions": await asyncio.get_running_loop().run_in_executor(pool, classify, data)}


@app.post("/tensor")
async def tensor(request: Request) -> dict:
    data = await request.body()
    loop = asyncio.get_running_loop()
    return {"predictions": await loop.run_in_executor(pool, classify_tensor, data)}


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
