"""`inference.GRPCInferenceService`: the v2 protocol's gRPC methods on the server's models.

Each method is a coroutine on the event loop the HTTP app runs on; decoding and
encoding tensors run on the shared CPU pool, inference on the schedulers. Every
method goes through `_observed`, the one place where a domain error becomes a
status code (`errors.py`), and where each call is counted and logged. Methods the
service does not implement (statistics, shared memory, trace and log settings)
answer UNIMPLEMENTED with what to use instead (`UnsupportedMethods`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from typing import Any, NoReturn

import grpc
from google.protobuf.message import Message

import batchserve
from batchserve.codecs.grpc import inference_pb2 as pb
from batchserve.codecs.grpc.metadata import model_config, model_metadata, server_metadata
from batchserve.codecs.grpc.tensors import decode_infer_request, encode_infer_response
from batchserve.errors import DeadlineExceeded, ModelNotFound, ModelNotReady
from batchserve.repository.loaded_model import LoadedModel
from batchserve.server.context import AppContext
from batchserve.server.grpc import calls
from batchserve.server.grpc.calls import Call
from batchserve.server.grpc.errors import (
    RpcError,
    code_for,
    message_for,
    trailing_metadata_for,
)
from batchserve.server.grpc.streaming import stream_infer
from batchserve.server.requests import is_whole_number

log = logging.getLogger("batchserve.server")
access_log = logging.getLogger("batchserve.access")

#: The service's full name: every method's path starts with it.
SERVICE = "inference.GRPCInferenceService"
EXTENSIONS = ("classification", "model_repository", "model_configuration")
#: A repository load may profile the model for seconds: it gets longer than an inference.
LOAD_TIMEOUT_S = 120.0

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Message]]


class InferenceService:
    """The implemented methods; `handlers()` registers them under `SERVICE`."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # -- health and metadata -----------------------------------------------------------

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Any
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Any
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.ctx.is_ready())

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Any
    ) -> pb.ModelReadyResponse:
        """Whether the version serves now; never loads it (false, not an error, as Triton)."""
        version = int(request.version) if is_whole_number(request.version) else None
        if request.version and version is None:
            return pb.ModelReadyResponse(ready=False)
        try:
            self.ctx.manager.get(request.name, version)
        except (ModelNotFound, ModelNotReady):
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        return server_metadata("batchserve", batchserve.__version__, EXTENSIONS)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        model = await Call(self.ctx, context).model(request.name, request.version)
        versions = [model.version]
        if not request.version:
            loaded = self.ctx.manager.loaded()
            versions = sorted(m.version for m in loaded if m.name == model.name)
        return model_metadata(model.name, versions, model.platform, model.inputs, model.outputs)

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Any
    ) -> pb.ModelConfigResponse:
        model = await Call(self.ctx, context).model(request.name, request.version)
        return model_config(
            model.name,
            model.config,
            model.inputs,
            model.outputs,
            platform=model.platform,
            max_batch_size=model.max_batch_size,
            instances=model.workers,
            has_labels=bool(model.codec.labels),
        )

    # -- inference ---------------------------------------------------------------------

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Any
    ) -> pb.ModelInferResponse:
        call = Call(self.ctx, context)
        model = await call.model(request.model_name, request.model_version)
        return await infer(call, model, request)

    def ModelStreamInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        return stream_infer(self.ctx, requests, context, infer)

    # -- the model repository ----------------------------------------------------------

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        _one_repository(request.repository_name)
        response = pb.RepositoryIndexResponse()
        for state in self.ctx.manager.index():
            if request.ready and state.state != "READY":
                continue
            response.models.add(
                name=state.name,
                version=str(state.version) if state.version else "",
                state=state.state,
                reason=state.reason,
            )
        return response

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        """Load (or reload) a model as its store has it now; answers once it is done."""
        _one_repository(request.repository_name)
        if request.parameters:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "load parameters (config or file overrides) are not supported",
            )
        future = self.ctx.manager.request_load(request.model_name)
        await _outcome(future, f"loading {request.model_name!r}", self.ctx, context)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        """Unload every version once its accepted requests are done."""
        _one_repository(request.repository_name)
        future = self.ctx.manager.request_unload(request.model_name)
        await _outcome(future, f"unloading {request.model_name!r}", self.ctx, context)
        return pb.RepositoryModelUnloadResponse()

    # -- registration ------------------------------------------------------------------

    def handlers(self) -> grpc.GenericRpcHandler:
        """The method table, each method wrapped by `_observed`."""
        table: dict[str, grpc.RpcMethodHandler] = {}
        for name, (request_type, response_type) in UNARY_METHODS.items():
            table[name] = grpc.unary_unary_rpc_method_handler(
                self._observed(name, getattr(self, name)),
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
        table["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
            self._observed_stream("ModelStreamInfer", self.ModelStreamInfer),
            request_deserializer=pb.ModelInferRequest.FromString,
            response_serializer=pb.ModelStreamInferResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE, table)

    def _observed(self, name: str, method: Handler) -> Handler:
        path = f"/{SERVICE}/{name}"

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Message:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await method(request, context)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED  # the client hung up or its deadline passed
                raise
            except Exception as exc:
                code = code_for(exc)
                await _abort(context, path, exc, code)
            finally:
                self._record(path, context, code, time.perf_counter() - started)

        return handler

    def _observed_stream(
        self,
        name: str,
        method: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Message]],
    ) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Message]]:
        path = f"/{SERVICE}/{name}"

        async def handler(
            requests: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Message]:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                async for response in method(requests, context):
                    yield response
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                code = code_for(exc)
                await _abort(context, path, exc, code)
            finally:
                self._record(path, context, code, time.perf_counter() - started)

        return handler

    def _record(
        self, path: str, context: grpc.aio.ServicerContext, code: grpc.StatusCode, seconds: float
    ) -> None:
        """Count the call and log it; a stream's requests are not labelled by model."""
        model, version = calls.served_model.get() or ("", "")
        metrics = self.ctx.metrics
        metrics.grpc_requests.labels(model, version, path, code.name).inc()
        if model:
            metrics.latency.labels(model, path).observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                json.dumps(
                    {
                        "protocol": "grpc",
                        "path": path,
                        "status": code.name,
                        "ms": round(seconds * 1000, 2),
                        "model": model or None,
                        "version": version or None,
                        "client": context.peer(),
                    }
                )
            )


#: The unary methods with their request and response messages.
UNARY_METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
    "ModelConfig": (pb.ModelConfigRequest, pb.ModelConfigResponse),
    "RepositoryIndex": (pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
    "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse),
    "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest, pb.RepositoryModelUnloadResponse),
}


async def infer(
    call: Call, model: LoadedModel, request: pb.ModelInferRequest
) -> pb.ModelInferResponse:
    """One ModelInfer on `model`, as the HTTP v2 route runs it: a slot of the model's
    admission bound before decoding, decode and encode on the CPU pool."""
    off_loop = call.ctx.off_loop
    async with call.admission(model).slot():
        decoded = await off_loop(
            lambda: decode_infer_request(request, model.inputs, output_specs=model.outputs)
        )
        if model.codec.text is not None:  # a text model: text tensors in and out
            outputs = await call.infer_text(model, decoded)
        else:
            outputs = await call.infer(model, decoded.inputs)
    return await off_loop(
        lambda: encode_infer_response(
            model.name,
            model.version,
            decoded.id,
            outputs,
            decoded.outputs,
            labels=model.output_labels(),
        )
    )


def _one_repository(name: str) -> None:
    if name:
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"batchserve has one repository index; leave repository_name empty, not {name!r}",
        )


async def _outcome(future: Future[None], what: str, ctx: AppContext, context: Any) -> None:
    timeout = max(ctx.settings.request_timeout_s, LOAD_TIMEOUT_S)
    remaining = context.time_remaining()
    if remaining is not None:
        timeout = min(timeout, remaining)
    try:
        # Shielded: the operator asked for it, so it finishes even if this wait gives up.
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
    except TimeoutError:
        raise DeadlineExceeded(
            f"{what} is still running after {timeout:g} s; see RepositoryIndex"
        ) from None
    except ModelNotReady as exc:  # the load failed: the reason is the client's to read
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None


async def _abort(
    context: grpc.aio.ServicerContext, path: str, exc: BaseException, code: grpc.StatusCode
) -> NoReturn:
    """End the call with `code` and the error's message (`context.abort` raises)."""
    if code is grpc.StatusCode.INTERNAL:
        log.error("internal error on gRPC %s from %s", path, context.peer(), exc_info=exc)
        message = "internal server error (logged by the server)"
    else:
        message = message_for(exc)
    await context.abort(code, message, trailing_metadata=trailing_metadata_for(exc))


#: What to use instead of each method batchserve does not implement.
_INSTEAD = {
    "ModelStatistics": "model statistics are not supported; read the Prometheus metrics at "
    "/metrics on the HTTP port",
    "SystemSharedMemory": "shared memory is not supported; send tensors in the request "
    "(raw_input_contents)",
    "CudaSharedMemory": "CUDA shared memory is not supported; send tensors in the request "
    "(raw_input_contents)",
    "TraceSetting": "tracing is not supported",
    "LogSettings": "log settings cannot be changed at run time; start the server with --log-level",
}


class UnsupportedMethods(grpc.GenericRpcHandler):
    """Every other method of the service: UNIMPLEMENTED, saying what to use instead.

    Registered after `InferenceService.handlers()`, so it only sees the methods that
    the service does not implement; methods of other services are left to gRPC.
    """

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        prefix = f"/{SERVICE}/"
        path = handler_call_details.method
        if not path.startswith(prefix):
            return None
        name = path.removeprefix(prefix)
        why = next((text for key, text in _INSTEAD.items() if name.startswith(key)), None)
        message = f"{name}: {why}" if why else f"{name} is not a method batchserve implements"

        async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

        return grpc.unary_unary_rpc_method_handler(refuse)
