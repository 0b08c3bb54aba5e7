"""The gRPC server's life: started on the ASGI app's event loop, stopped gracefully.

Bounds, the same as HTTP's: a message larger than `--max-body-mb` is refused by
gRPC itself (RESOURCE_EXHAUSTED), in both directions; past `--max-connections`
calls at once, a new call is refused at once (RESOURCE_EXHAUSTED); every call has
the request timeout as its deadline at most. SO_REUSEPORT is off, so a second
server cannot silently share the port with a running one.

A graceful stop refuses new calls at once and lets the calls in flight finish
within the drain timeout; the models are stopped only after that.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from batchserve.server.context import AppContext
from batchserve.server.grpc.auth import BearerTokenInterceptor
from batchserve.server.grpc.service import InferenceService, UnsupportedMethods

log = logging.getLogger("batchserve.server")


class GrpcServer:
    """`inference.GRPCInferenceService` on `host:port` (0: a free port)."""

    def __init__(self, ctx: AppContext, host: str, port: int) -> None:
        settings = ctx.settings
        self.host = host
        self._requested_port = port
        self._stopping: asyncio.Task[None] | None = None
        interceptors = [BearerTokenInterceptor(settings.auth_token)] if settings.auth_token else []
        self._server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                ("grpc.max_send_message_length", settings.max_body_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=settings.max_connections,
        )
        self._server.add_generic_rpc_handlers(
            (InferenceService(ctx).handlers(), UnsupportedMethods())
        )
        self.port = 0

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving; raises OSError when the port cannot be bound."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        try:
            self.port = self._server.add_insecure_port(f"{host}:{self._requested_port}")
        except RuntimeError as exc:  # grpcio's way of saying the bind failed
            raise OSError(f"gRPC cannot listen on {host}:{self._requested_port}: {exc}") from None
        if self.port == 0:
            raise OSError(f"gRPC cannot listen on {host}:{self._requested_port}")
        await self._server.start()

    def begin_stop(self, grace_s: float) -> asyncio.Task[None]:
        """Refuse new calls now, give those in flight `grace_s` to finish; idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace_s))
        return self._stopping

    async def stop(self, grace_s: float) -> None:
        await self.begin_stop(grace_s)

    async def _stop(self, grace_s: float) -> None:
        await self._server.stop(grace_s)
        log.info("gRPC stopped")
