"""`POST /openai/v1/completions`: OpenAI's (legacy) completions on a generation model,
whole or streamed as OpenAI's chunks over SSE, ending with `data: [DONE]`.

Both ways read the tokens as they are sampled, so a stop sequence ends the generation
as soon as its text appears: the generation is cancelled (its slot is free at the
batcher's next step) and the text ends before the stop sequence.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from batchserve.errors import BatchserveError, DeadlineExceeded
from batchserve.repository.loaded_model import GenerationResult
from batchserve.server.errors import OPENAI_PREFIX, client_status, error_body, status_for
from batchserve.server.openai.models import TASK_ROUTES, openai_model
from batchserve.server.openai.parameters import (
    COMPLETION_NEUTRAL,
    CompletionBody,
    blame,
    parse_body,
)
from batchserve.server.openai.stop import StopScanner
from batchserve.server.requests import read_json_object, wait_or_disconnect
from batchserve.server.sse import SSE_HEADERS, sse_data, text_pieces
from batchserve.server.text import Generation, observe_generation, start_generation

router = APIRouter()

#: The batcher fails a generation at its deadline itself; waiting a little longer lets
#: that error, not a timeout here, be the answer.
_PAST_DEADLINE_S = 5.0


@router.post(TASK_ROUTES["generate"])
async def create_completion(request: Request) -> Response:
    """Complete `prompt`; `"stream": true` for OpenAI's chunk stream."""
    body = parse_body(CompletionBody, await read_json_object(request), COMPLETION_NEUTRAL)
    model = await openai_model(request, body.model, "generate")
    with blame("prompt"):
        gen = await start_generation(request, model, body.prompt, body.sampling(), stream=True)
    completion = Completion(request, gen, body)
    if body.stream:
        return StreamingResponse(
            completion.chunks(), media_type="text/event-stream", headers=SSE_HEADERS
        )
    return JSONResponse(await completion.whole())


class Completion:
    """One completion being generated: its text (stop sequences applied) and its answer
    in OpenAI's format, whole or as chunks."""

    def __init__(self, request: Request, gen: Generation, body: CompletionBody) -> None:
        self.request = request
        self.gen = gen
        self.body = body
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self._scanner = StopScanner(body.stop)
        #: Tokens up to and including the one that completed a stop sequence.
        self._stopped_after: int | None = None

    async def whole(self) -> dict[str, Any]:
        """The whole answer; a client that hangs up meanwhile cancels the generation."""

        async def collect() -> tuple[str, GenerationResult]:
            try:
                text = "".join([piece async for piece in self._pieces()])
            except TimeoutError:
                raise DeadlineExceeded("no token came within the request timeout") from None
            return text, await self._finished()

        text, result = await wait_or_disconnect(
            self.request,
            asyncio.ensure_future(collect()),
            self.gen.timeout_s + _PAST_DEADLINE_S,
            on_abandon=self.gen.handle.cancel,
        )
        return self._envelope(
            [self._choice(text, self._finish_reason(result))], usage=self._usage(result)
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        """OpenAI's stream: a chunk per piece of text, a last one with the finish reason
        (then one with the usage when `stream_options.include_usage`), `data: [DONE]`;
        an error is a last event in OpenAI's error shape."""
        try:
            try:
                async for piece in self._pieces():
                    yield sse_data(self._chunk(self._choice(piece, None)))
                result = await self._finished()
            except TimeoutError:
                yield sse_data(error_body(OPENAI_PREFIX, 504, "generation timed out"))
                return
            except BatchserveError as exc:
                status = client_status(OPENAI_PREFIX, status_for(exc))
                yield sse_data(error_body(OPENAI_PREFIX, status, str(exc), exc))
                return
            yield sse_data(self._chunk(self._choice("", self._finish_reason(result))))
            if self.body.include_usage:
                yield sse_data(self._envelope([], usage=self._usage(result)))
            yield b"data: [DONE]\n\n"
        finally:
            # The client went away (or the stream ended): free the slot at the next step.
            self.gen.handle.cancel()

    async def _pieces(self) -> AsyncIterator[str]:
        """The text as it comes, up to the first stop sequence; finding one cancels the
        generation."""
        async for piece in text_pieces(self.gen):
            text = self._scanner.push(piece)
            if text:
                yield text
            if self._scanner.stopped:
                assert self.gen.channel is not None
                self._stopped_after = self.gen.channel.received
                self.gen.handle.cancel()
                return
        tail = self._scanner.flush()
        if tail:
            yield tail

    async def _finished(self) -> GenerationResult:
        """The generation's result; after a stop it comes at the batcher's next step."""
        result = await asyncio.wait_for(
            asyncio.wrap_future(self.gen.handle.future), self.gen.timeout_s + _PAST_DEADLINE_S
        )
        observe_generation(self.request, self.gen.model, result)
        return result

    def _finish_reason(self, result: GenerationResult) -> str:
        if self._stopped_after is not None:
            return "stop"
        return "length" if result.finish_reason == "length" else "stop"

    def _usage(self, result: GenerationResult) -> dict[str, int]:
        assert self.gen.channel is not None
        completion = self.gen.channel.received
        if self._stopped_after is not None:
            completion = self._stopped_after
        return {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": result.prompt_tokens + completion,
        }

    @staticmethod
    def _choice(text: str, finish_reason: str | None) -> dict[str, Any]:
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        chunk = self._envelope([choice])
        if self.body.include_usage:
            chunk["usage"] = None
        return chunk

    def _envelope(
        self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.gen.model.name,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return body
