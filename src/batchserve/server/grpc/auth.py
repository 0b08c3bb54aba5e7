"""The bearer token over gRPC: `authorization: Bearer TOKEN` metadata, as over HTTP.

Compared in constant time; ServerLive stays open (an orchestrator's liveness probe
carries no token), as `/v2/health/live` does.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

#: Reachable without the token.
OPEN_METHODS = frozenset({"/inference.GRPCInferenceService/ServerLive"})
REFUSAL = "missing or wrong bearer token (metadata 'authorization: Bearer TOKEN')"


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call without the right token with UNAUTHENTICATED, before it runs."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in OPEN_METHODS:
            return handler
        given = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value if isinstance(value, str) else value.decode("latin-1")
                break
        if hmac.compare_digest(given.encode("utf-8", "replace"), self._expected):
            return handler
        return _refusal(handler)


async def _refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        REFUSAL,
        trailing_metadata=(("www-authenticate", "Bearer"),),
    )


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same kind (unary or streaming) that only refuses."""
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_refuse)
    return grpc.unary_unary_rpc_method_handler(_refuse)
