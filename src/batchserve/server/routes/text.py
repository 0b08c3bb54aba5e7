"""Text models over HTTP: generation (whole text, or streamed as Server-Sent Events) and
sentence embeddings.

- `POST /v1/models/{name}/generate` `{"prompt", "max_tokens", "temperature", "top_k",
  "seed", "stream"}`: the whole text, or with `"stream": true` one SSE event per
  piece of text, then a last event with the finish reason and usage.
- `POST /v2/models/{name}/generate` and `/generate_stream`: Triton's generate
  extension: `{"text_input": ..., "parameters": {...}}` in, `{"model_name",
  "model_version", "text_output"}` out (one SSE `data:` event per piece when streamed).
- `POST /v1/models/{name}/embed` `{"texts": [...]}` (or `"text"`): one unit vector
  per text. v2 `infer` on an embed model takes a BYTES `text` tensor (see `v2_infer`).

Tokens come from the batcher's loop thread through a `TokenChannel`, which hands
them to the event loop with `call_soon_threadsafe`: nothing here blocks the loop.
A client that goes away cancels its generation, which frees its slot at the
next step.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from batchserve.codecs.text import (
    EMBED_INPUT,
    EMBED_OUTPUT,
    TEXT_INPUT,
    TEXT_OUTPUT,
    EmbeddingCodec,
    GenerationCodec,
    decode_texts,
)
from batchserve.codecs.v2 import InferRequest
from batchserve.errors import DeadlineExceeded, InvalidInput
from batchserve.repository.loaded_model import LoadedModel
from batchserve.scheduling.continuous_batcher import GenerationHandle, GenerationResult
from batchserve.scheduling.sampling import SamplingParams
from batchserve.server.body import read_body
from batchserve.server.errors import HTTPError, status_for
from batchserve.server.inference import find_model, infer, metrics, off_loop, settings

router = APIRouter(tags=["text"])

_END = object()
_SAMPLING_FIELDS = ("max_tokens", "temperature", "top_k", "seed", "ignore_eos")
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# -- generation ------------------------------------------------------------------------


@router.post("/v1/models/{name}/generate")
async def generate_latest(request: Request, name: str) -> Response:
    """Generate text from a prompt with the newest version; `"stream": true` for SSE."""
    return await _generate_v1(request, name, None)


@router.post("/v1/models/{name}/versions/{version}/generate")
async def generate_version(request: Request, name: str, version: str) -> Response:
    return await _generate_v1(request, name, version)


@router.post("/v2/models/{name}/generate")
async def v2_generate_latest(request: Request, name: str) -> Response:
    """Triton's generate extension: the whole `text_output` in one JSON object."""
    return await _generate_v2(request, name, None, stream=False)


@router.post("/v2/models/{name}/versions/{version}/generate")
async def v2_generate_version(request: Request, name: str, version: str) -> Response:
    return await _generate_v2(request, name, version, stream=False)


@router.post("/v2/models/{name}/generate_stream")
async def v2_generate_stream_latest(request: Request, name: str) -> Response:
    """Triton's generate extension, streamed: one SSE event per piece of `text_output`."""
    return await _generate_v2(request, name, None, stream=True)


@router.post("/v2/models/{name}/versions/{version}/generate_stream")
async def v2_generate_stream_version(request: Request, name: str, version: str) -> Response:
    return await _generate_v2(request, name, version, stream=True)


@dataclass
class _Generation:
    """A started generation and what the response needs from it."""

    model: LoadedModel
    codec: GenerationCodec
    handle: GenerationHandle
    channel: TokenChannel | None
    timeout_s: float
    started: float


async def _generate_v1(request: Request, name: str, version: str | None) -> Response:
    doc = await _json_body(request)
    prompt = doc.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInput("the body needs 'prompt': a string")
    stream = _flag(doc, "stream")
    gen = await _start(request, name, version, prompt, _sampling(doc, doc), stream)
    if stream:
        return _sse(request, gen, _v1_event)
    result = await _wait(request, gen)
    text = gen.codec.decode(result.tokens)
    return JSONResponse(
        {
            "model": gen.model.name,
            "version": gen.model.version,
            "text": text,
            "finish_reason": result.finish_reason,
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": len(result.tokens),
            },
            "timings_ms": _timings(result),
        }
    )


async def _generate_v2(
    request: Request, name: str, version: str | None, *, stream: bool
) -> Response:
    doc = await _json_body(request)
    prompt = doc.get(TEXT_INPUT)
    if isinstance(prompt, list) and len(prompt) == 1:  # Triton accepts a one-element batch
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidInput(f"the body needs {TEXT_INPUT!r}: a string")
    parameters = doc.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be an object")
    gen = await _start(request, name, version, prompt, _sampling(parameters, doc), stream)
    if stream:
        return _sse(request, gen, _v2_event)
    result = await _wait(request, gen)
    return JSONResponse(
        {
            "model_name": gen.model.name,
            "model_version": str(gen.model.version),
            TEXT_OUTPUT: gen.codec.decode(result.tokens),
        }
    )


async def _start(
    request: Request,
    name: str,
    version: str | None,
    prompt: str,
    sampling: dict[str, Any],
    stream: bool,
) -> _Generation:
    model = await find_model(request, name, version)
    codec = model.text_codec
    if not isinstance(codec, GenerationCodec):
        raise InvalidInput(
            f"model {model.name!r} does not generate text (task: {model.config.task})"
        )
    config = model.config.generate
    assert config is not None
    max_tokens = sampling.pop("max_tokens", config.max_tokens)
    if isinstance(max_tokens, int) and max_tokens > config.max_tokens_limit:
        raise InvalidInput(
            f"max_tokens must be at most {config.max_tokens_limit}, not {max_tokens}"
        )
    try:
        params = SamplingParams(max_tokens=max_tokens, **sampling)
    except TypeError as exc:
        raise InvalidInput(f"bad sampling parameters: {exc}") from None
    tokens = await off_loop(request, codec.encode_prompt, prompt)
    timeout = _timeout(request, model)
    channel = TokenChannel(asyncio.get_running_loop()) if stream else None
    started = time.monotonic()
    handle = model.generate(
        tokens, params, deadline=started + timeout, on_token=channel.put if channel else None
    )
    if channel is not None:
        channel.close_when_done(handle)
    return _Generation(model, codec, handle, channel, timeout, started)


async def _wait(request: Request, gen: _Generation) -> GenerationResult:
    """The whole result; a client that disconnects meanwhile cancels the generation."""
    result = asyncio.wrap_future(gen.handle.future)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        # A little past the deadline: the batcher itself fails the request at it.
        await asyncio.wait(
            {result, gone}, timeout=gen.timeout_s + 5, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        gone.cancel()
    if not result.done():
        gen.handle.cancel()
        result.cancel()
        if gone.done():  # nobody will read this answer; 499 is nginx's "client closed"
            raise HTTPError(499, "the client closed the request")
        raise DeadlineExceeded(f"no result within the request timeout of {gen.timeout_s:g} s")
    outcome = result.result()
    _observe(request, gen.model, outcome)
    return outcome


class TokenChannel:
    """Carries tokens from the batcher's loop thread to the event loop, in order, then an
    end marker once the generation's future is done."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def put(self, token: int) -> None:
        """Called on the batcher's thread; raises once the event loop is closed, which
        tells the batcher to cancel the request."""
        self._loop.call_soon_threadsafe(self.queue.put_nowait, token)

    def close_when_done(self, handle: GenerationHandle) -> None:
        def end(_: object) -> None:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.queue.put_nowait, _END)

        handle.future.add_done_callback(end)


#: Builds one SSE payload from (model, text piece, final result, error); None: no event.
EventFormat = Callable[
    [LoadedModel, str | None, GenerationResult | None, str | None], dict[str, Any] | None
]


def _sse(request: Request, gen: _Generation, event: EventFormat) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        assert gen.channel is not None
        decoder = gen.codec.tokenizer.stream_decoder()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(gen.channel.queue.get(), gen.timeout_s + 5)
                except TimeoutError:
                    yield _data(event(gen.model, None, None, "generation timed out"))
                    return
                if item is _END:
                    break
                piece = decoder.push(item)  # type: ignore[arg-type]
                if piece:
                    yield _data(event(gen.model, piece, None, None))
            tail = decoder.flush()
            if tail:
                yield _data(event(gen.model, tail, None, None))
            future = gen.handle.future
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                yield _data(event(gen.model, None, None, f"{status_for(error)}: {error}"))
                return
            result = future.result()
            _observe(request, gen.model, result)
            final = event(gen.model, None, result, None)
            if final is not None:  # v1 closes with a summary and [DONE]; Triton just ends
                yield _data(final)
                yield b"data: [DONE]\n\n"
        finally:
            # The client went away (or the stream ended): free the slot at the next step.
            gen.handle.cancel()

    return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)


def _v1_event(
    model: LoadedModel, piece: str | None, result: GenerationResult | None, error: str | None
) -> dict[str, Any] | None:
    if error is not None:
        return {"error": error}
    if result is not None:
        return {
            "text": "",
            "finish_reason": result.finish_reason,
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": len(result.tokens),
            },
            "timings_ms": _timings(result),
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


def _data(payload: Mapping[str, Any] | None) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _observe(request: Request, model: LoadedModel, result: GenerationResult) -> None:
    m = metrics(request)
    m.generated_tokens.labels(model.name).inc(len(result.tokens))
    if result.first_token_s is not None:
        m.time_to_first_token.labels(model.name).observe(result.first_token_s)
    per_token = result.time_per_output_token_s
    if per_token is not None:
        m.time_per_output_token.labels(model.name).observe(per_token)


def _timings(result: GenerationResult) -> dict[str, float | None]:
    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 3)

    return {
        "queue": ms(result.queue_s),
        "first_token": ms(result.first_token_s),
        "per_output_token": ms(result.time_per_output_token_s),
        "total": ms(result.total_s),
    }


def _sampling(parameters: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Sampling fields from `parameters`, or from the top level (Triton accepts both)."""
    found: dict[str, Any] = {}
    for key in _SAMPLING_FIELDS:
        value = parameters.get(key, top.get(key))
        if value is None:
            continue
        if key == "ignore_eos":
            if not isinstance(value, bool):
                raise InvalidInput("ignore_eos must be true or false")
        elif key == "temperature":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"temperature must be a number, not {value!r}")
            value = float(value)
        elif isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{key} must be a whole number, not {value!r}")
        found[key] = value
    return found


def _flag(doc: Mapping[str, Any], key: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false")
    return value


def _timeout(request: Request, model: LoadedModel) -> float:
    timeout = settings(request).request_timeout_s
    if model.config.scheduler.timeout_ms is not None:
        timeout = min(timeout, model.config.scheduler.timeout_ms / 1000.0)
    return timeout


async def _json_body(request: Request) -> dict[str, Any]:
    body = await read_body(request, settings(request).max_body_bytes)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("the body must be a JSON object")
    return doc


# -- embeddings ------------------------------------------------------------------------


@router.post("/v1/models/{name}/embed")
async def embed_latest(request: Request, name: str) -> JSONResponse:
    """Embed `texts` (a list of strings) or `text` (one string) with the newest version."""
    return await _embed_v1(request, name, None)


@router.post("/v1/models/{name}/versions/{version}/embed")
async def embed_version(request: Request, name: str, version: str) -> JSONResponse:
    return await _embed_v1(request, name, version)


async def _embed_v1(request: Request, name: str, version: str | None) -> JSONResponse:
    started = time.perf_counter()
    doc = await _json_body(request)
    texts = doc.get("texts", [doc["text"]] if "text" in doc else None)
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput("the body needs 'texts': a list of strings (or 'text': a string)")
    model = await find_model(request, name, version)
    vectors = await embed(request, model, texts)
    payload = await off_loop(
        request,
        lambda: json.dumps(
            {
                "model": model.name,
                "version": model.version,
                "dimensions": int(vectors.shape[1]),
                "embeddings": vectors.tolist(),
                "timings_ms": {"total": round((time.perf_counter() - started) * 1000, 3)},
            }
        ).encode(),
    )
    return Response(payload, media_type="application/json")  # type: ignore[return-value]


async def embed(request: Request, model: LoadedModel, texts: list[str]) -> np.ndarray:
    """One unit vector per text, [len(texts), dims]. Each text is its own request to the
    scheduler, so texts of similar length from any client share a padded batch."""
    codec = model.text_codec
    if not isinstance(codec, EmbeddingCodec):
        raise InvalidInput(f"model {model.name!r} does not embed text (task: {model.config.task})")
    requests = await off_loop(request, codec.encode, texts)
    results = await asyncio.gather(*(infer(request, model, inputs) for inputs in requests))
    wanted = codec.config.output
    rows = [r.outputs[wanted] if wanted else next(iter(r.outputs.values())) for r in results]
    return np.concatenate(rows)


async def infer_text(
    request: Request, model: LoadedModel, decoded: InferRequest
) -> dict[str, np.ndarray]:
    """v2 `infer` on a text model: BYTES `text` in, `embedding` out (embed models), or
    `text_input` in, `text_output` out (generate models: not streamed)."""
    if isinstance(model.text_codec, EmbeddingCodec):
        texts = decode_texts(decoded.inputs[EMBED_INPUT], EMBED_INPUT)
        return {EMBED_OUTPUT: await embed(request, model, texts)}
    (prompt,) = decode_texts(decoded.inputs[TEXT_INPUT], TEXT_INPUT)
    sampling = _sampling(decoded.parameters, {})
    gen = await _start(request, model.name, str(model.version), prompt, sampling, False)
    result = await _wait(request, gen)
    return {TEXT_OUTPUT: np.array([gen.codec.decode(result.tokens).encode()], dtype=object)}
