"""`/v1/models/{name}[/versions/{v}]/predict`: an image in, top-k labels out.

The image comes as the raw body (image/jpeg, image/png, image/webp), as a
multipart `file`, or as JSON `{"url": ...}` / `{"image_b64": ...}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse

from batchserve.codecs.images import IMAGE_MEDIA_TYPES
from batchserve.codecs.predictions import scores_from_output, top_k_labels
from batchserve.codecs.url_fetch import FetchLimits, FetchPolicy, fetch_image
from batchserve.errors import InvalidInput, UnsupportedMediaType, UrlRefused
from batchserve.repository.loaded_model import LoadedModel
from batchserve.server.admission import admission_for
from batchserve.server.body import read_body
from batchserve.server.errors import HTTPError
from batchserve.server.inference import find_model, infer, manager, metrics, off_loop, settings

router = APIRouter(tags=["predict"])


@dataclass
class ImageRequest:
    data: bytes
    top_k: int | None


@router.get("/v1/models")
async def list_models(request: Request) -> JSONResponse:
    """Every model and version the repository knows, with its state."""
    return JSONResponse(
        {
            "models": [
                {"name": s.name, "version": s.version, "state": s.state, "reason": s.reason}
                for s in manager(request).index()
            ]
        }
    )


@router.post("/v1/models/{name}/predict")
async def predict_latest(request: Request, name: str) -> JSONResponse:
    """Classify an image with the newest loaded version."""
    return await _predict(request, name, None)


@router.post("/v1/models/{name}/versions/{version}/predict")
async def predict_version(request: Request, name: str, version: str) -> JSONResponse:
    """Classify an image with one version."""
    return await _predict(request, name, version)


async def _predict(request: Request, name: str, version: str | None) -> JSONResponse:
    started = time.perf_counter()
    model = await find_model(request, name, version)
    if model.image_codec is None:
        raise HTTPError(
            400,
            f"model {name!r} has no image preprocessing; send tensors to "
            f"/v2/models/{name}/infer instead",
        )
    image = await _read_image_request(request)
    top_k = _top_k(request, image.top_k, model)
    metrics(request).image_bytes.labels(model.name).observe(len(image.data))

    async with admission_for(request, model).slot():
        decode_started = time.perf_counter()
        tensor = await off_loop(request, model.image_codec.decode, image.data)
        decode_s = time.perf_counter() - decode_started
        metrics(request).stage.labels(model.name, "decode").observe(decode_s)
        result = await infer(request, model, {model.image_input: tensor})
    output = model.config.classification.output or model.outputs[0].name
    scores = scores_from_output(result.outputs[output][0], model.config.classification)
    return JSONResponse(
        {
            "model": model.name,
            "version": model.version,
            "predictions": top_k_labels(scores, top_k, model.labels),
            "timings_ms": {
                "decode": round(decode_s * 1000, 3),
                "queue": round(result.queue_s * 1000, 3),
                "inference": round(result.inference_s * 1000, 3),
                "total": round((time.perf_counter() - started) * 1000, 3),
            },
            "batch_size": result.batch_size,
        }
    )


def _top_k(request: Request, from_body: int | None, model: LoadedModel) -> int:
    raw: Any = request.query_params.get("top_k", from_body)
    if raw is None:
        return 5
    try:
        k = int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"top_k must be a whole number, not {raw!r}") from None
    limit = settings(request).max_top_k
    if not 1 <= k <= limit:
        raise InvalidInput(f"top_k must be between 1 and {limit}, not {k}")
    return k


async def _read_image_request(request: Request) -> ImageRequest:
    limit = settings(request).max_body_bytes
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in IMAGE_MEDIA_TYPES or media_type == "application/octet-stream":
        return ImageRequest(await read_body(request, limit), None)
    if media_type == "multipart/form-data":
        return await _read_multipart(request, limit)
    if media_type == "application/json":
        return await _read_json(request, limit)
    raise UnsupportedMediaType(
        f"content type {media_type or '(none)'!r} is not accepted; send image/jpeg, image/png, "
        "image/webp, multipart/form-data with a 'file' field, or JSON with 'url' or 'image_b64'"
    )


async def _read_multipart(request: Request, limit: int) -> ImageRequest:
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
        return ImageRequest(data, int(top_k) if isinstance(top_k, str) and top_k else None)
    except ValueError:
        raise InvalidInput("top_k must be a whole number") from None
    finally:
        await form.close()


async def _read_json(request: Request, limit: int) -> ImageRequest:
    body = await read_body(request, limit)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("JSON body must be an object with 'url' or 'image_b64'")
    top_k = doc.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
        raise InvalidInput(f"top_k must be a whole number, not {top_k!r}")
    if isinstance(doc.get("image_b64"), str):
        try:
            data = base64.b64decode(doc["image_b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"image_b64 is not valid base64: {exc}") from None
        return ImageRequest(data, top_k)
    if isinstance(doc.get("url"), str):
        if not settings(request).url_fetch:
            raise UrlRefused("fetching images by URL is switched off on this server")
        # Waiting on the network, not the CPU: anyio's thread pool (bounded, 40), not ours.
        fetched = await run_in_threadpool(
            fetch_image,
            doc["url"],
            request.app.state.fetch_limits,
            request.app.state.fetch_policy,
        )
        return ImageRequest(fetched.content, top_k)
    raise InvalidInput("JSON body needs 'url' (a string) or 'image_b64' (base64 of the image)")


def fetch_settings(s: Any) -> tuple[FetchLimits, FetchPolicy]:
    """The URL fetcher's limits and policy from the server settings."""
    limits = FetchLimits(max_bytes=s.url_max_bytes, total_timeout_s=s.url_timeout_s)
    policy = FetchPolicy(
        allow_hosts=s.url_allow_hosts,
        allow_networks=s.url_allow_networks,
        allow_private=s.url_allow_private,
        allow_loopback=s.url_allow_loopback,
    )
    return limits, policy
