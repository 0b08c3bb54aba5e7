"""What the gRPC methods share: the model a call names, and running an inference
(tensors, embeddings or a generation) within the call's deadline.

The gRPC side of `server/inference.py` and `server/text.py`, on the same
`AppContext` and `LoadedModel` calls, without a Starlette request. A call's
deadline is the smallest of `--request-timeout`, the model's `timeout_ms` and what
is left of the client's own gRPC deadline. A call the client cancels, or whose
deadline passes, is cancelled by gRPC (its task gets CancelledError): its queued
work is dropped with it, and a generation frees its slot at the next step.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np

from batchserve.codecs.text import (
    EMBED_INPUT,
    EMBED_OUTPUT,
    TEXT_INPUT,
    TEXT_OUTPUT,
    EmbeddingCodec,
    decode_texts,
)
from batchserve.codecs.v2 import InferRequest
from batchserve.errors import DeadlineExceeded, ModelNotFound
from batchserve.repository.loaded_model import GenerationResult, LoadedModel
from batchserve.server.admission import Admission, model_admission
from batchserve.server.context import AppContext
from batchserve.server.requests import model_timeout, version_number
from batchserve.server.text import Generation, begin_generation, record_generation, sampling_fields

#: The batcher fails a generation at its deadline itself; waiting a little longer lets
#: that error, not a timeout here, be the answer.
_PAST_DEADLINE_S = 5.0

#: The (model, version) the running call resolved to, for its metrics and log line:
#: only names the repository knows become labels, never whatever a client sent.
served_model: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "served_model", default=None
)


class Call:
    """One gRPC call's view of the server: its deadline, and the work it runs."""

    def __init__(self, ctx: AppContext, context: grpc.aio.ServicerContext) -> None:
        self.ctx = ctx
        self.context = context

    def timeout(self, model: LoadedModel | None = None) -> float:
        """Seconds this call may still wait: the request timeout, the model's, the client's."""
        settings = self.ctx.settings
        timeout = settings.request_timeout_s if model is None else model_timeout(settings, model)
        remaining = self.context.time_remaining()
        if remaining is not None:
            if remaining <= 0:
                raise DeadlineExceeded("the call's deadline passed before it could run")
            timeout = min(timeout, remaining)
        return timeout

    async def model(self, name: str, version: str) -> LoadedModel:
        """The version that serves the call (loading it first under a memory budget)."""
        if not name:
            raise ModelNotFound("the request names no model")
        number = version_number(name, version or None)
        future = self.ctx.manager.acquire(name, number)
        if not future.done():
            timeout = self.timeout()
            try:
                await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"model {name!r} was still loading after {timeout:g} s"
                ) from None
        model = future.result()
        served_model.set((model.name, str(model.version) if version else ""))
        return model

    def admission(self, model: LoadedModel) -> Admission:
        """The model's admission bound, the one its HTTP requests share."""
        return model_admission(self.ctx, model)

    async def infer(
        self, model: LoadedModel, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Tensors through the model within the deadline; a request still queued when
        the time runs out or the call is cancelled is dropped, never run."""
        timeout = self.timeout(model)
        future = model.submit(inputs, deadline=time.monotonic() + timeout)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            future.cancel()
            raise DeadlineExceeded(f"no result within {timeout:g} s") from None
        except asyncio.CancelledError:
            future.cancel()
            raise
        stage = self.ctx.metrics.stage
        stage.labels(model.name, "queue").observe(result.queue_s)
        stage.labels(model.name, "inference").observe(result.inference_s)
        return dict(result.outputs)

    async def infer_text(self, model: LoadedModel, request: InferRequest) -> dict[str, np.ndarray]:
        """A text model through ModelInfer: BYTES `text` in, `embedding` out (embed), or
        `text_input` in, the whole `text_output` out (generate)."""
        codec = model.codec.text
        if isinstance(codec, EmbeddingCodec):
            texts = decode_texts(request.inputs[EMBED_INPUT], EMBED_INPUT)
            # Each text its own request, so that texts of similar length share a batch.
            tensors = await self.ctx.off_loop(codec.encode, texts)
            results = await asyncio.gather(*(self.infer(model, t) for t in tensors))
            wanted = codec.config.output
            rows = [r[wanted] if wanted else next(iter(r.values())) for r in results]
            return {EMBED_OUTPUT: np.concatenate(rows)}
        (prompt,) = decode_texts(request.inputs[TEXT_INPUT], TEXT_INPUT)
        generation = await self.generate(model, prompt, request.parameters, stream=False)
        result = await self.finish(generation)
        text = generation.codec.decode(result.tokens)
        return {TEXT_OUTPUT: np.array([text.encode()], dtype=object)}

    async def generate(
        self, model: LoadedModel, prompt: str, parameters: Mapping[str, Any], *, stream: bool
    ) -> Generation:
        """Start a generation with the request's sampling parameters (`max_tokens`,
        `temperature`...); with `stream` its tokens arrive on `Generation.channel`."""
        sampling = sampling_fields(parameters, {})
        return await begin_generation(
            self.ctx, model, prompt, sampling, timeout_s=self.timeout(model), stream=stream
        )

    async def finish(self, generation: Generation) -> GenerationResult:
        """The whole result; cancelled with the call, failed past the deadline."""
        future = asyncio.wrap_future(generation.handle.future)
        try:
            result = await asyncio.wait_for(future, generation.timeout_s + _PAST_DEADLINE_S)
        except TimeoutError:
            generation.handle.cancel()
            raise DeadlineExceeded(f"no result within {generation.timeout_s:g} s") from None
        except asyncio.CancelledError:
            generation.handle.cancel()
            raise
        record_generation(self.ctx.metrics, generation.model, result)
        return result
