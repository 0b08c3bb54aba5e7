"""Text generation over HTTP: the whole text, or streamed as Server-Sent Events.

- `POST /v1/models/{name}/generate` `{"prompt", "max_tokens", "temperature", "top_k",
  "seed", "stream"}`: the whole text, or with `"stream": true` one SSE event per
  piece of text, then a last event with the finish reason and usage.
- `POST /v2/models/{name}/generate` and `/generate_stream`: Triton's generate
  extension: `{"text_input": ..., "parameters": {...}}` in, `{"model_name",
  "model_version", "text_output"}` out (one SSE `data:` event per piece when streamed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from batchserve.codecs.text import TEXT_INPUT, TEXT_OUTPUT
from batchserve.errors import InvalidInput
from batchserve.repository.loaded_model import GenerationResult, LoadedModel
from batchserve.server.inference import requested_model
from batchserve.server.requests import model_route, read_json_object
from batchserve.server.sse import event_stream
from batchserve.server.text import (
    generation_result,
    generation_timings,
    observe_generation,
    sampling_fields,
    start_generation,
)

router = APIRouter(tags=["text"])


@model_route(router, "POST", "/v1/models/{name}/generate")
async def generate_v1(request: Request) -> Response:
    """Generate text from a prompt; `"stream": true` for SSE."""
    model = await requested_model(request)
    doc = await read_json_object(request)
    prompt = doc.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInput("the body needs 'prompt': a string")
    stream = _flag(doc, "stream")
    gen = await start_generation(request, model, prompt, sampling_fields(doc, doc), stream=stream)
    if stream:
        return event_stream(gen, _v1_event, lambda r: observe_generation(request, model, r))
    result = await generation_result(request, gen)
    return JSONResponse(
        {
            "model": model.name,
            "version": model.version,
            "text": gen.codec.decode(result.tokens),
            "finish_reason": result.finish_reason,
            "usage": _usage(result),
            "timings_ms": generation_timings(result),
        }
    )


@model_route(router, "POST", "/v2/models/{name}/generate")
async def generate_v2(request: Request) -> Response:
    """Triton's generate extension: the whole `text_output` in one JSON object."""
    return await _generate_v2(request, stream=False)


@model_route(router, "POST", "/v2/models/{name}/generate_stream")
async def generate_stream_v2(request: Request) -> Response:
    """Triton's generate extension, streamed: one SSE event per piece of `text_output`."""
    return await _generate_v2(request, stream=True)


async def _generate_v2(request: Request, *, stream: bool) -> Response:
    model = await requested_model(request)
    doc = await read_json_object(request)
    prompt = doc.get(TEXT_INPUT)
    if isinstance(prompt, list) and len(prompt) == 1:  # Triton accepts a one-element batch
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidInput(f"the body needs {TEXT_INPUT!r}: a string")
    parameters = doc.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be an object")
    sampling = sampling_fields(parameters, doc)
    gen = await start_generation(request, model, prompt, sampling, stream=stream)
    if stream:
        return event_stream(gen, _v2_event, lambda r: observe_generation(request, model, r))
    result = await generation_result(request, gen)
    return JSONResponse(
        {
            "model_name": model.name,
            "model_version": str(model.version),
            TEXT_OUTPUT: gen.codec.decode(result.tokens),
        }
    )


def _usage(result: GenerationResult) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": len(result.tokens)}


def _v1_event(
    model: LoadedModel, piece: str | None, result: GenerationResult | None, error: str | None
) -> dict[str, Any] | None:
    if error is not None:
        return {"error": error}
    if result is not None:
        return {
            "text": "",
            "finish_reason": result.finish_reason,
            "usage": _usage(result),
            "timings_ms": generation_timings(result),
        }
    return {"text": piece, "finish_reason": None}


def _v2_event(
    model: LoadedModel, piece: str | None, result: GenerationResult | None, error: str | None
) -> dict[str, Any] | None:
    if error is not None:
        return {"error": error}
    if result is not None:
        return None  # Triton ends the stream without a closing event
    return {"model_name": model.name, "model_version": str(model.version), TEXT_OUTPUT: piece}


def _flag(doc: Mapping[str, Any], key: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false")
    return value
