"""The KServe / Triton v2 inference protocol: server and model metadata, health,
readiness, and `infer` with JSON tensors, the binary tensor data extension and the
classification extension."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import batchserve
from batchserve.codecs.v2 import (
    HEADER_LENGTH_HEADER,
    decode_infer_request,
    encode_infer_response,
    model_metadata,
    model_ready_body,
    server_metadata,
)
from batchserve.server.admission import admission_for
from batchserve.server.context import context
from batchserve.server.errors import HTTPError, error_response
from batchserve.server.inference import infer, requested_model
from batchserve.server.requests import (
    header_number,
    model_path,
    model_route,
    read_body,
)
from batchserve.server.text import infer_text

router = APIRouter(tags=["v2"])

EXTENSIONS = ("binary_tensor_data", "classification", "model_repository")


@router.get("/v2")
async def server_meta() -> JSONResponse:
    return JSONResponse(server_metadata("batchserve", batchserve.__version__, EXTENSIONS))


@router.get("/v2/health/live")
async def live() -> JSONResponse:
    return JSONResponse({"live": True})


@router.get("/v2/health/ready")
async def ready(request: Request) -> JSONResponse:
    if context(request).is_ready():
        return JSONResponse({"ready": True})
    return error_response(503, "models are still loading")


@model_route(router, "GET", "/v2/models/{name}")
async def model_meta(request: Request) -> JSONResponse:
    """The model's metadata; without a version, every loaded version is listed."""
    model = await requested_model(request)
    versions = [model.version]
    if model_path(request)[1] is None:
        loaded = context(request).manager.loaded()
        versions = sorted(m.version for m in loaded if m.name == model.name)
    return JSONResponse(
        model_metadata(model.name, versions, model.platform, model.inputs, model.outputs)
    )


@model_route(router, "GET", "/v2/models/{name}/ready")
async def model_ready(request: Request) -> JSONResponse:
    model = await requested_model(request)
    version = model.version if model_path(request)[1] is not None else None
    return JSONResponse(model_ready_body(model.name, True, version))


@router.get("/v2/models/{name}/config")
async def model_config(request: Request) -> JSONResponse:
    """The model's model.yaml as the server understood it (Triton's config endpoint)."""
    model = await requested_model(request)
    body = model.config.model_dump(mode="json")
    body["name"] = model.name
    body["max_batch_size"] = model.max_batch_size
    return JSONResponse(body)


@model_route(router, "POST", "/v2/models/{name}/infer")
async def infer_tensors(request: Request) -> Response:
    ctx = context(request)
    model = await requested_model(request)
    body = await read_body(request, ctx.settings.max_body_bytes)
    header_length = _header_length(request, len(body))
    # A binary request's tensors are views of the body: parsing it is its JSON header.
    parse_size = header_length if header_length is not None else len(body)
    async with admission_for(request, model).slot():
        decoded = await ctx.off_loop_unless_small(
            parse_size,
            lambda: decode_infer_request(
                body, header_length, model.inputs, output_specs=model.outputs
            ),
        )
        if model.codec.text is not None:  # a text model: text tensors in and out
            outputs = await infer_text(request, model, decoded)
        else:
            outputs = (await infer(request, model, decoded.inputs)).outputs
    payload, json_length = await ctx.off_loop_unless_small(
        sum(getattr(value, "nbytes", 0) for value in outputs.values()),
        lambda: encode_infer_response(
            model.name,
            model.version,
            decoded.id,
            outputs,
            decoded.outputs,
            decoded.binary_data_output,
            labels=model.output_labels(),
        ),
    )
    if json_length is None:
        return Response(payload, media_type="application/json")
    return Response(
        payload,
        media_type="application/octet-stream",
        headers={HEADER_LENGTH_HEADER: str(json_length)},
    )


def _header_length(request: Request, body_length: int) -> int | None:
    length = header_number(request, HEADER_LENGTH_HEADER)
    if length is not None and length > body_length:
        raise HTTPError(
            400, f"{HEADER_LENGTH_HEADER} {length} is past the body's {body_length} bytes"
        )
    return length
