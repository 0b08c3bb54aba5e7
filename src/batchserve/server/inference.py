"""What the routes share: finding the model a request names, and waiting for its result
without blocking the event loop and without waiting past the request's deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from starlette.requests import Request

from batchserve.errors import DeadlineExceeded, ModelNotFound
from batchserve.repository.loaded_model import LoadedModel
from batchserve.repository.manager import ModelManager
from batchserve.scheduling.base import InferenceResult
from batchserve.server.errors import ClientDisconnected
from batchserve.server.metrics import ServerMetrics
from batchserve.server.settings import ServerSettings

T = TypeVar("T")


def manager(request: Request) -> ModelManager:
    return request.app.state.manager


def settings(request: Request) -> ServerSettings:
    return request.app.state.settings


def metrics(request: Request) -> ServerMetrics:
    return request.app.state.metrics


async def find_model(request: Request, name: str, version: str | None) -> LoadedModel:
    """The version that serves this request. With a memory budget it may have to be
    loaded first: the load runs on the manager's loader thread and this request waits
    for it without holding a thread, within the request timeout."""
    number: int | None = None
    if version is not None:
        if not version.isdigit():
            raise ModelNotFound(f"version {version!r} of model {name!r}: versions are numbers")
        number = int(version)
    future = manager(request).acquire(name, number)
    if not future.done():
        timeout = settings(request).request_timeout_s
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            raise DeadlineExceeded(
                f"model {name!r} was still loading after the request timeout of {timeout:g} s"
            ) from None
    return future.result()


async def off_loop(request: Request, fn: Callable[..., T], *args: object) -> T:
    """Run blocking work (decode, encode, JSON of big tensors) on the CPU pool."""
    pool: ThreadPoolExecutor = request.app.state.cpu_pool
    return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


async def infer(
    request: Request, model: LoadedModel, inputs: Mapping[str, np.ndarray]
) -> InferenceResult:
    """Submit to the model's scheduler and await the result within the request timeout.

    A request whose time runs out, or whose client hangs up, is cancelled: if it is
    still queued it never runs, so abandoned work does not pile up behind live clients.
    """
    timeout = settings(request).request_timeout_s
    if model.config.scheduler.timeout_ms is not None:
        timeout = min(timeout, model.config.scheduler.timeout_ms / 1000.0)
    future = model.submit(inputs, deadline=time.monotonic() + timeout)
    result_ready = asyncio.wrap_future(future)
    hung_up = asyncio.ensure_future(_client_gone(request))
    try:
        done, _ = await asyncio.wait(
            {result_ready, hung_up}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        hung_up.cancel()
    if result_ready not in done:
        future.cancel()
        result_ready.cancel()
        if hung_up in done:
            raise ClientDisconnected("the client closed the connection before the result")
        raise DeadlineExceeded(f"no result within the request timeout of {timeout:g} s")
    result = result_ready.result()
    stage = metrics(request).stage
    stage.labels(model.name, "queue").observe(result.queue_s)
    stage.labels(model.name, "inference").observe(result.inference_s)
    return result


async def _client_gone(request: Request) -> None:
    """Returns once the client disconnects; call only after the body was read whole."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
