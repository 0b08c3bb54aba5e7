"""The KServe / Triton v2 inference protocol: server and model metadata, health,
readiness, and `infer` with JSON tensors, the binary tensor data extension and the
classification extension."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import batchserve
from batchserve.codecs.v2 import HEADER_LENGTH_HEADER, decode_infer_request
from batchserve.codecs.v2_response import (
    encode_infer_response,
    model_metadata,
    model_ready_body,
    server_metadata,
)
from batchserve.repository.loaded_model import LoadedModel
from batchserve.server.admission import admission_for
from batchserve.server.body import read_body
from batchserve.server.errors import HTTPError, error_response
from batchserve.server.inference import find_model, infer, manager, off_loop, settings
from batchserve.server.routes import text

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
    if request.app.state.ready.is_set() and manager(request).is_ready():
        return JSONResponse({"ready": True})
    return error_response(503, "models are still loading")


@router.get("/v2/models/{name}")
async def model_meta(request: Request, name: str) -> JSONResponse:
    return _metadata(request, await find_model(request, name, None), all_versions=True)


@router.get("/v2/models/{name}/versions/{version}")
async def model_version_meta(request: Request, name: str, version: str) -> JSONResponse:
    return _metadata(request, await find_model(request, name, version), all_versions=False)


@router.get("/v2/models/{name}/ready")
async def model_ready(request: Request, name: str) -> JSONResponse:
    model = await find_model(request, name, None)
    return JSONResponse(model_ready_body(model.name, True))


@router.get("/v2/models/{name}/versions/{version}/ready")
async def model_version_ready(request: Request, name: str, version: str) -> JSONResponse:
    model = await find_model(request, name, version)
    return JSONResponse(model_ready_body(model.name, True, model.version))


@router.get("/v2/models/{name}/config")
async def model_config(request: Request, name: str) -> JSONResponse:
    """The model's model.yaml as the server understood it (Triton's config endpoint)."""
    model = await find_model(request, name, None)
    body = model.config.model_dump(mode="json")
    body["name"] = model.name
    body["max_batch_size"] = model.built.layout.max_batch_size
    return JSONResponse(body)


@router.post("/v2/models/{name}/infer")
async def infer_latest(request: Request, name: str) -> Response:
    return await _infer(request, await find_model(request, name, None))


@router.post("/v2/models/{name}/versions/{version}/infer")
async def infer_version(request: Request, name: str, version: str) -> Response:
    return await _infer(request, await find_model(request, name, version))


def _metadata(request: Request, model: LoadedModel, *, all_versions: bool) -> JSONResponse:
    versions = [model.version]
    if all_versions:
        versions = sorted(m.version for m in manager(request).loaded() if m.name == model.name)
    return JSONResponse(
        model_metadata(model.name, versions, model.platform, model.inputs, model.outputs)
    )


async def _infer(request: Request, model: LoadedModel) -> Response:
    body = await read_body(request, settings(request).max_body_bytes)
    header_length = _header_length(request, len(body))
    async with admission_for(request, model).slot():
        decoded = await off_loop(
            request,
            lambda: decode_infer_request(
                body, header_length, model.inputs, output_specs=model.outputs
            ),
        )
        if model.text_codec is not None:  # a text model: text tensors in and out
            outputs = await text.infer_text(request, model, decoded)
        else:
            outputs = (await infer(request, model, decoded.inputs)).outputs
    labels = {spec.name: model.labels for spec in model.outputs} if model.labels else None
    payload, json_length = await off_loop(
        request,
        lambda: encode_infer_response(
            model.name,
            model.version,
            decoded.id,
            outputs,
            decoded.outputs,
            decoded.binary_data_output,
            labels=labels,
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
    raw = request.headers.get(HEADER_LENGTH_HEADER)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > body_length:
        raise HTTPError(
            400, f"{HEADER_LENGTH_HEADER} {raw!r} must be a whole number within the body length"
        )
    return int(raw)
