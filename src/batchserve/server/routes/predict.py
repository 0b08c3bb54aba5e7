"""`/v1/models/{name}[/versions/{v}]/predict`: a request in the model's own format, its
answer out; and `GET /v1/models`.

What the body is depends on the model's predict codec (`LoadedModel.codec.predict`).
An image model takes the image as the raw body (image/jpeg, image/png, image/webp),
as a multipart `file`, or as JSON `{"url": ...}` / `{"image_b64": ...}`, with
`top_k` as a query parameter or JSON field, and answers the top-k labels. A Python
model with its own `decode`/`encode` takes whatever body they read.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse

from batchserve.codecs.images import IMAGE_MEDIA_TYPES
from batchserve.codecs.model_codec import PredictCodec
from batchserve.codecs.url_fetch import fetch_image
from batchserve.errors import InvalidInput, UnsupportedMediaType, UrlRefused
from batchserve.repository.loaded_model import Deferred
from batchserve.server.admission import admission_for
from batchserve.server.context import context
from batchserve.server.errors import HTTPError
from batchserve.server.inference import infer, requested_model
from batchserve.server.requests import (
    is_whole_number,
    model_route,
    parse_json_object,
    read_body,
)

router = APIRouter(tags=["predict"])


@dataclass
class PredictRequest:
    """A /predict request once its envelope is opened: the bytes the model's codec
    decodes, their media type, and the request's parameters (query and JSON fields)."""

    data: bytes
    content_type: str
    parameters: dict[str, Any]


@router.get("/v1/models")
async def list_models(request: Request) -> JSONResponse:
    """Every model and version the repository knows, with its state."""
    return JSONResponse(
        {
            "models": [
                {"name": s.name, "version": s.version, "state": s.state, "reason": s.reason}
                for s in context(request).manager.index()
            ]
        }
    )


@model_route(router, "POST", "/v1/models/{name}/predict")
async def predict(request: Request) -> JSONResponse:
    """Run one request in the model's own format: for an image model, classify an image."""
    started = time.perf_counter()
    ctx = context(request)
    model = await requested_model(request)
    codec = model.codec.predict
    if codec is None:
        raise HTTPError(
            400,
            f"model {model.name!r} has no /predict format (no image preprocessing, no "
            f"decode of its own); send tensors to /v2/models/{model.name}/infer instead",
        )
    if codec.takes_images:
        body = await _read_image_request(request)
        ctx.metrics.image_bytes.labels(model.name).observe(len(body.data))
    else:
        body = await _read_raw_request(request)
    parameters = _parameters(request, codec, body.parameters)

    # Decode, inference and encode run on the worker that takes the request, one thread
    # for the whole request; the event loop only reads the body and writes the answer.
    work = Deferred(
        prepare=functools.partial(codec.decode, body.data, body.content_type),
        declared=codec.declared_inputs,
        finish=functools.partial(codec.encode, parameters=parameters),
    )
    async with admission_for(request, model).slot():
        result = await infer(request, model, work)
    return JSONResponse(
        {
            "model": model.name,
            "version": model.version,
            **result.outputs,
            "timings_ms": {
                "decode": round(result.prepare_s * 1000, 3),
                "queue": round(result.queue_s * 1000, 3),
                "inference": round(result.inference_s * 1000, 3),
                "total": round((time.perf_counter() - started) * 1000, 3),
            },
            "batch_size": result.batch_size,
        }
    )


def _parameters(request: Request, codec: PredictCodec, from_body: dict[str, Any]) -> dict[str, Any]:
    """The query parameters over the body's; for an image model, `top_k` checked."""
    parameters = {**from_body, **request.query_params}
    if codec.takes_images:
        parameters["top_k"] = _top_k(request, parameters.get("top_k"))
    return parameters


def _top_k(request: Request, raw: Any) -> int:
    if raw is None:
        return 5
    if isinstance(raw, str) and is_whole_number(raw) and len(raw) <= 18:
        k = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        k = raw
    else:
        raise InvalidInput(f"top_k must be a whole number, not {raw!r}")
    limit = context(request).settings.max_top_k
    if not 1 <= k <= limit:
        raise InvalidInput(f"top_k must be between 1 and {limit}, not {k}")
    return k


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_raw_request(request: Request) -> PredictRequest:
    limit = context(request).settings.max_body_bytes
    content_type = request.headers.get("content-type", "")
    return PredictRequest(await read_body(request, limit), content_type, {})


async def _read_image_request(request: Request) -> PredictRequest:
    limit = context(request).settings.max_body_bytes
    media_type = _media_type(request)
    if media_type in IMAGE_MEDIA_TYPES or media_type == "application/octet-stream":
        return PredictRequest(await read_body(request, limit), media_type, {})
    if media_type == "multipart/form-data":
        return await _read_multipart(request, limit)
    if media_type == "application/json":
        return await _read_json(request, limit)
    raise UnsupportedMediaType(
        f"content type {media_type or '(none)'!r} is not accepted; send image/jpeg, image/png, "
        "image/webp, multipart/form-data with a 'file' field, or JSON with 'url' or 'image_b64'"
    )


async def _read_multipart(request: Request, limit: int) -> PredictRequest:
    body = await read_body(request, limit)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    form_request = Request(request.scope, replay)
    try:
        form = await form_request.form(max_files=1, max_fields=16, max_part_size=limit)
    except Exception as exc:  # python-multipart and starlette raise several kinds
        raise InvalidInput(f"malformed multipart body: {exc}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("multipart body needs a 'file' field holding the image")
        data = await upload.read()
        top_k = form.get("top_k")
        parameters = {"top_k": top_k} if isinstance(top_k, str) and top_k else {}
        return PredictRequest(data, upload.content_type or "", parameters)
    finally:
        await form.close()


async def _read_json(request: Request, limit: int) -> PredictRequest:
    doc = parse_json_object(await read_body(request, limit))
    top_k = doc.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
        raise InvalidInput(f"top_k must be a whole number, not {top_k!r}")
    parameters = {"top_k": top_k} if top_k is not None else {}
    if isinstance(doc.get("image_b64"), str):
        try:
            data = base64.b64decode(doc["image_b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"image_b64 is not valid base64: {exc}") from None
        return PredictRequest(data, "", parameters)
    if isinstance(doc.get("url"), str):
        ctx = context(request)
        if not ctx.settings.url_fetch:
            raise UrlRefused("fetching images by URL is switched off on this server")
        # Waiting on the network, not the CPU: anyio's thread pool (bounded, 40), not ours.
        fetched = await run_in_threadpool(
            fetch_image, doc["url"], ctx.fetch_limits, ctx.fetch_policy
        )
        return PredictRequest(fetched.content, "", parameters)
    raise InvalidInput("JSON body needs 'url' (a string) or 'image_b64' (base64 of the image)")
