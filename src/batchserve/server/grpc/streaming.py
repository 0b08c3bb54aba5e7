"""ModelStreamInfer: many requests on one bidirectional stream, answered as they finish.

A generation model answers like a Triton *decoupled* model: each piece of text as
its own response (`text_output`, one BYTES element), as the tokens come. Any other
model answers each request with one response. Responses carry the request's `id`,
so a client can tell interleaved requests apart.

Where a generation ends: Triton's convention. A request with the parameter
``triton_enable_empty_final_response: true`` (tritonclient's
``enable_empty_final_response=True``) gets, after its last piece, an empty
response with ``triton_final_response: true``; every piece carries
``triton_final_response: false``. Without it nothing marks the end, as in Triton.
An error ends only its own request: it comes as `error_message` (with the status
code's name in front) and the stream goes on.

The stream ends when the client closes its side and every request on it has been
answered. A client that cancels the stream (or hangs up) cancels its generations,
which frees their slots at the next step. Bounds: at most `MAX_IN_FLIGHT` requests
of one stream run at once (past it the stream is not read, so HTTP/2 flow control
holds the client back), and each request has the deadline of a ModelInfer call,
capped by what is left of the stream's own gRPC deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import numpy as np

from batchserve.codecs.grpc import inference_pb2 as pb
from batchserve.codecs.grpc.tensors import (
    decode_infer_request,
    parameter_values,
    set_parameter,
)
from batchserve.codecs.text import TEXT_INPUT, TEXT_OUTPUT, GenerationCodec, decode_texts
from batchserve.codecs.v2.binary import tensor_to_binary
from batchserve.errors import DeadlineExceeded
from batchserve.repository.loaded_model import LoadedModel
from batchserve.server.context import AppContext
from batchserve.server.grpc.calls import Call
from batchserve.server.grpc.errors import code_for, message_for
from batchserve.server.sse import text_pieces
from batchserve.server.text import Generation

log = logging.getLogger("batchserve.server")

#: Requests of one stream running at once.
MAX_IN_FLIGHT = 32
#: Responses waiting to be written; past it the requests' tasks wait for the client.
MAX_PENDING_RESPONSES = 256
FINAL = "triton_final_response"
WANT_FINAL = "triton_enable_empty_final_response"

Infer = Callable[[Call, LoadedModel, pb.ModelInferRequest], Awaitable[pb.ModelInferResponse]]


async def stream_infer(
    ctx: AppContext,
    requests: AsyncIterator[pb.ModelInferRequest],
    context: grpc.aio.ServicerContext,
    infer: Infer,
) -> AsyncIterator[pb.ModelStreamInferResponse]:
    """Answer every request of the stream; see the module docstring."""
    out: asyncio.Queue[pb.ModelStreamInferResponse] = asyncio.Queue(MAX_PENDING_RESPONSES)
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(request: pb.ModelInferRequest) -> None:
        try:
            await _answer(Call(ctx, context), request, out, infer)
        finally:
            slots.release()

    async def read() -> None:
        """Start a task per request until the client closes its side, then wait for them."""
        async for request in requests:
            await slots.acquire()
            task = asyncio.create_task(answer(request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.wait(set(tasks))

    reader = asyncio.create_task(read())
    try:
        while True:
            next_response = asyncio.ensure_future(out.get())
            await asyncio.wait({next_response, reader}, return_when=asyncio.FIRST_COMPLETED)
            if next_response.done():
                yield next_response.result()
                continue
            next_response.cancel()
            while not out.empty():  # every request is answered: send what is left
                yield out.get_nowait()
            reader.result()  # what ended the reading, if it was an error
            return
    finally:
        reader.cancel()
        for task in list(tasks):
            task.cancel()


async def _answer(
    call: Call,
    request: pb.ModelInferRequest,
    out: asyncio.Queue[pb.ModelStreamInferResponse],
    infer: Infer,
) -> None:
    """Answer one request of the stream: its responses, or its error."""
    want_final = parameter_values(request.parameters).get(WANT_FINAL) is True
    try:
        model = await call.model(request.model_name, request.model_version)
        if isinstance(model.codec.text, GenerationCodec):
            await _stream_generation(call, model, request, out, want_final)
            return
        response = await infer(call, model, request)
        if want_final:
            set_parameter(response.parameters, FINAL, True)
        await out.put(pb.ModelStreamInferResponse(infer_response=response))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        code = code_for(exc)
        message = message_for(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.error("internal error on a gRPC stream from %s", call.context.peer(), exc_info=exc)
            message = "internal server error (logged by the server)"
        await out.put(
            pb.ModelStreamInferResponse(
                error_message=f"[{code}] {message}",
                infer_response=pb.ModelInferResponse(
                    model_name=request.model_name,
                    model_version=request.model_version,
                    id=request.id,
                ),
            )
        )


async def _stream_generation(
    call: Call,
    model: LoadedModel,
    request: pb.ModelInferRequest,
    out: asyncio.Queue[pb.ModelStreamInferResponse],
    want_final: bool,
) -> None:
    decoded = await call.ctx.off_loop(
        lambda: decode_infer_request(request, model.inputs, output_specs=model.outputs)
    )
    (prompt,) = decode_texts(decoded.inputs[TEXT_INPUT], TEXT_INPUT)
    generation = await call.generate(model, prompt, decoded.parameters, stream=True)
    try:
        async for piece in _stream(generation):
            response = _response(model, request.id)
            response.outputs.add(name=TEXT_OUTPUT, datatype="BYTES", shape=[1])
            response.raw_output_contents.append(
                tensor_to_binary(np.array([piece.encode()], object))
            )
            set_parameter(response.parameters, FINAL, False)
            await out.put(pb.ModelStreamInferResponse(infer_response=response))
        await call.finish(generation)  # done already: raises the generation's error
    finally:
        generation.handle.cancel()  # a no-op once finished; frees the slot otherwise
    if want_final:
        response = _response(model, request.id)
        set_parameter(response.parameters, FINAL, True)
        await out.put(pb.ModelStreamInferResponse(infer_response=response))


async def _stream(generation: Generation) -> AsyncIterator[str]:
    """The text as it comes (never a character cut in two)."""
    try:
        async for piece in text_pieces(generation):
            yield piece
    except TimeoutError:
        raise DeadlineExceeded(f"no token within {generation.timeout_s:g} s") from None


def _response(model: LoadedModel, request_id: str) -> pb.ModelInferResponse:
    return pb.ModelInferResponse(
        model_name=model.name, model_version=str(model.version), id=request_id
    )
