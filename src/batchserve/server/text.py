"""Text models behind every protocol: starting a generation and waiting for it, sampling
parameters from a request, and embedding texts.

The HTTP routes (`routes/generate.py`, `routes/embed.py`, v2 `infer` on a text model)
and other front ends call these; none of them builds a response here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request

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
from batchserve.errors import InvalidInput, InvalidParameter
from batchserve.repository.loaded_model import (
    GenerationHandle,
    GenerationResult,
    LoadedModel,
    SamplingParams,
)
from batchserve.server.context import AppContext, context
from batchserve.server.inference import infer
from batchserve.server.metrics import ServerMetrics
from batchserve.server.requests import (
    raise_if_disconnected,
    request_timeout,
    wait_or_disconnect,
)
from batchserve.server.sse import TokenChannel

_SAMPLING_FIELDS = ("max_tokens", "temperature", "top_k", "top_p", "seed", "ignore_eos")
#: The batcher fails a generation at its deadline itself; waiting a little longer lets
#: that error, not a timeout here, be the answer.
_PAST_DEADLINE_S = 5.0


@dataclass
class Generation:
    """A started generation and what a response needs from it."""

    model: LoadedModel
    codec: GenerationCodec
    handle: GenerationHandle
    #: Tokens as they come, when streamed.
    channel: TokenChannel | None
    timeout_s: float
    started: float


def sampling_fields(parameters: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Sampling fields from `parameters`, or from the top level (Triton accepts both)."""
    found: dict[str, Any] = {}
    for key in _SAMPLING_FIELDS:
        value = parameters.get(key, top.get(key))
        if value is None:
            continue
        if key == "ignore_eos":
            if not isinstance(value, bool):
                raise InvalidParameter(key, "ignore_eos must be true or false")
        elif key in ("temperature", "top_p"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParameter(key, f"{key} must be a number, not {value!r}")
            value = float(value)
        elif isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParameter(key, f"{key} must be a whole number, not {value!r}")
        found[key] = value
    return found


def generation_codec(model: LoadedModel) -> GenerationCodec:
    codec = model.codec.text
    if not isinstance(codec, GenerationCodec):
        raise InvalidInput(
            f"model {model.name!r} does not generate text (task: {model.config.task})"
        )
    return codec


async def start_generation(
    request: Request,
    model: LoadedModel,
    prompt: str,
    sampling: dict[str, Any],
    *,
    stream: bool,
) -> Generation:
    """Tokenize `prompt` off the loop and start generating; with `stream`, tokens arrive
    on the generation's channel as they are sampled."""
    await raise_if_disconnected(request)
    timeout = request_timeout(request, model)
    return await begin_generation(
        context(request), model, prompt, sampling, timeout_s=timeout, stream=stream
    )


async def begin_generation(
    ctx: AppContext,
    model: LoadedModel,
    prompt: str,
    sampling: dict[str, Any],
    *,
    timeout_s: float,
    stream: bool,
) -> Generation:
    """`start_generation` for any protocol: the caller says how long it may take."""
    codec = generation_codec(model)
    config = model.config.generate
    assert config is not None
    sampling = dict(sampling)
    max_tokens = sampling.pop("max_tokens", config.max_tokens)
    if isinstance(max_tokens, int) and max_tokens > config.max_tokens_limit:
        raise InvalidParameter(
            "max_tokens", f"max_tokens must be at most {config.max_tokens_limit}, not {max_tokens}"
        )
    try:
        params = SamplingParams(max_tokens=max_tokens, **sampling)
    except TypeError as exc:
        raise InvalidInput(f"bad sampling parameters: {exc}") from None
    tokens = await ctx.off_loop(codec.encode_prompt, prompt)
    channel = TokenChannel(asyncio.get_running_loop()) if stream else None
    started = time.monotonic()
    handle = model.generate(
        tokens, params, deadline=started + timeout_s, on_token=channel.put if channel else None
    )
    if channel is not None:
        channel.close_when_done(handle)
    return Generation(model, codec, handle, channel, timeout_s, started)


async def generation_result(request: Request, gen: Generation) -> GenerationResult:
    """The whole result; a client that disconnects meanwhile cancels the generation."""
    result = await wait_or_disconnect(
        request,
        asyncio.wrap_future(gen.handle.future),
        gen.timeout_s + _PAST_DEADLINE_S,
        on_abandon=gen.handle.cancel,
    )
    observe_generation(request, gen.model, result)
    return result


def observe_generation(request: Request, model: LoadedModel, result: GenerationResult) -> None:
    record_generation(context(request).metrics, model, result)


def record_generation(m: ServerMetrics, model: LoadedModel, result: GenerationResult) -> None:
    """A finished generation's tokens and timings, in the metrics."""
    m.generated_tokens.labels(model.name).inc(len(result.tokens))
    if result.first_token_s is not None:
        m.time_to_first_token.labels(model.name).observe(result.first_token_s)
    per_token = result.time_per_output_token_s
    if per_token is not None:
        m.time_per_output_token.labels(model.name).observe(per_token)


def generation_timings(result: GenerationResult) -> dict[str, float | None]:
    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 3)

    return {
        "queue": ms(result.queue_s),
        "first_token": ms(result.first_token_s),
        "per_output_token": ms(result.time_per_output_token_s),
        "total": ms(result.total_s),
    }


@dataclass(frozen=True)
class Embeddings:
    """Unit vectors [texts, dims], and how many tokens of each text the model read."""

    vectors: np.ndarray
    token_counts: list[int]


async def embed(request: Request, model: LoadedModel, texts: list[str]) -> np.ndarray:
    """One unit vector per text, [len(texts), dims]."""
    return (await embed_texts(request, model, texts)).vectors


async def embed_texts(request: Request, model: LoadedModel, texts: list[str]) -> Embeddings:
    """Each text is its own request to the scheduler, so texts of similar length from any
    client share a padded batch."""
    codec = model.codec.text
    if not isinstance(codec, EmbeddingCodec):
        raise InvalidInput(f"model {model.name!r} does not embed text (task: {model.config.task})")
    requests = await context(request).off_loop(codec.encode, texts)
    results = await asyncio.gather(*(infer(request, model, inputs) for inputs in requests))
    wanted = codec.config.output
    rows = [r.outputs[wanted] if wanted else next(iter(r.outputs.values())) for r in results]
    counts = [int(inputs[codec.config.ids_input].shape[1]) for inputs in requests]
    return Embeddings(np.concatenate(rows), counts)


async def infer_text(
    request: Request, model: LoadedModel, decoded: InferRequest
) -> dict[str, np.ndarray]:
    """v2 `infer` on a text model: BYTES `text` in, `embedding` out (embed models), or
    `text_input` in, `text_output` out (generate models: not streamed)."""
    if isinstance(model.codec.text, EmbeddingCodec):
        texts = decode_texts(decoded.inputs[EMBED_INPUT], EMBED_INPUT)
        return {EMBED_OUTPUT: await embed(request, model, texts)}
    (prompt,) = decode_texts(decoded.inputs[TEXT_INPUT], TEXT_INPUT)
    sampling = sampling_fields(decoded.parameters, {})
    gen = await start_generation(request, model, prompt, sampling, stream=False)
    result = await generation_result(request, gen)
    return {TEXT_OUTPUT: np.array([gen.codec.decode(result.tokens).encode()], dtype=object)}
