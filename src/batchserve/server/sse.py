"""Streaming a generation as Server-Sent Events.

Tokens come from the batcher's loop thread through a `TokenChannel`, which hands them
to the event loop with `call_soon_threadsafe`: nothing here blocks the loop. A client
that goes away ends the stream, and the generation is cancelled, which frees its slot
at the next step.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import StreamingResponse

from batchserve.repository.loaded_model import GenerationHandle, GenerationResult, LoadedModel
from batchserve.server.errors import status_for

if TYPE_CHECKING:
    from batchserve.server.text import Generation

_END = object()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

#: Builds one SSE payload from (model, text piece, final result, error); None: no event.
EventFormat = Callable[
    [LoadedModel, str | None, GenerationResult | None, str | None], dict[str, Any] | None
]


class TokenChannel:
    """Carries tokens from the batcher's loop thread to the event loop, in order, then an
    end marker once the generation's future is done."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        #: Tokens taken by `next_token` so far.
        self.received = 0

    def put(self, token: int) -> None:
        """Called on the batcher's thread; raises once the event loop is closed, which
        tells the batcher to cancel the request."""
        self._loop.call_soon_threadsafe(self.queue.put_nowait, token)

    def close_when_done(self, handle: GenerationHandle) -> None:
        def end(_: object) -> None:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.queue.put_nowait, _END)

        handle.future.add_done_callback(end)

    async def next_token(self, timeout: float) -> int | None:
        """The next token, or None once the generation is done; TimeoutError when none
        comes within `timeout` seconds."""
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if item is _END:
            return None
        self.received += 1
        return item  # type: ignore[return-value]


async def text_pieces(gen: Generation) -> AsyncIterator[str]:
    """The generated text as it comes, in pieces that never cut a character in two;
    raises TimeoutError when no token comes within the request's time."""
    assert gen.channel is not None
    decoder = gen.codec.tokenizer.stream_decoder()
    while (token := await gen.channel.next_token(gen.timeout_s + 5)) is not None:
        piece = decoder.push(token)
        if piece:
            yield piece
    tail = decoder.flush()
    if tail:
        yield tail


def event_stream(
    gen: Generation,
    event: EventFormat,
    on_result: Callable[[GenerationResult], None],
) -> StreamingResponse:
    """The generation as SSE: an event per piece of text, then `event`'s closing one (if
    it makes one) and `data: [DONE]`; an error, a timeout, as a last event."""

    async def events() -> AsyncIterator[bytes]:
        try:
            try:
                async for piece in text_pieces(gen):
                    yield sse_data(event(gen.model, piece, None, None))
            except TimeoutError:
                yield sse_data(event(gen.model, None, None, "generation timed out"))
                return
            future = gen.handle.future
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                yield sse_data(event(gen.model, None, None, f"{status_for(error)}: {error}"))
                return
            result = future.result()
            on_result(result)
            final = event(gen.model, None, result, None)
            if final is not None:  # v1 closes with a summary and [DONE]; Triton just ends
                yield sse_data(final)
                yield b"data: [DONE]\n\n"
        finally:
            # The client went away (or the stream ended): free the slot at the next step.
            gen.handle.cancel()

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


def sse_data(payload: Mapping[str, Any] | None) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()
