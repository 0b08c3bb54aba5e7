"""What the inference routes share: finding the model a request names, and running one
request on it without blocking the event loop and without waiting past its deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request

from batchserve.errors import DeadlineExceeded
from batchserve.repository.loaded_model import Deferred, InferenceResult, LoadedModel
from batchserve.server.context import context
from batchserve.server.requests import (
    label_served_model,
    model_path,
    request_timeout,
    version_number,
    wait_or_disconnect,
    watch_disconnect,
)


async def find_model(request: Request, name: str, version: str | None) -> LoadedModel:
    """The version that serves this request. With a memory budget it may have to be
    loaded first: the load runs on the manager's loader thread and this request waits
    for it without holding a thread, within the request timeout."""
    number = version_number(name, version)
    ctx = context(request)
    future = ctx.manager.acquire(name, number)
    if not future.done():
        timeout = ctx.settings.request_timeout_s
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            raise DeadlineExceeded(
                f"model {name!r} was still loading after the request timeout of {timeout:g} s"
            ) from None
    model = future.result()
    label_served_model(request, model, versioned=number is not None)
    return model


async def requested_model(request: Request) -> LoadedModel:
    """The model (and version) the request's path names."""
    return await find_model(request, *model_path(request))


async def infer(request: Request, model: LoadedModel, inputs: Any) -> InferenceResult:
    """Submit to the model and await the result within the request timeout.

    A request whose time runs out, or whose client hangs up, is cancelled: if it is
    still queued it never runs, so abandoned work does not pile up behind live clients.
    The watch on the client starts before the request is queued, so a client already
    gone (it hung up while the request waited for its admission slot) is never queued.
    A `Deferred` request's decode is observed as the "decode" stage.
    """
    hung_up = await watch_disconnect(request)
    timeout = request_timeout(request, model)
    try:
        future = model.submit(inputs, deadline=time.monotonic() + timeout)
    except BaseException:
        hung_up.cancel()
        raise
    result = await wait_or_disconnect(
        request, asyncio.wrap_future(future), timeout, hung_up=hung_up
    )
    stage = context(request).metrics.stage
    if isinstance(inputs, Deferred):
        stage.labels(model.name, "decode").observe(result.prepare_s)
    stage.labels(model.name, "queue").observe(result.queue_s)
    stage.labels(model.name, "inference").observe(result.inference_s)
    return result
