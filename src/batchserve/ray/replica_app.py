"""What a replica wraps around batchserve's app: who answered, when it is ready, its /metrics.

Pure ASGI, so the app inside is exactly `create_app(settings)`: its routes, SSE
streams and bearer-token check pass through unchanged. The replica's readiness is
read from the app's own `/v2/health/ready`, in process, not from its internals.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from dataclasses import dataclass

import httpx
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("batchserve.ray")

REPLICA_HEADER = b"x-batchserve-replica"
NODE_HEADER = b"x-batchserve-node"


@dataclass(frozen=True)
class ReplicaIdentity:
    """Which replica, on which Ray node: stamped on every answer."""

    replica: str
    node_id: str
    node_ip: str


class ReplicaMiddleware:
    """Stamps answers with the replica and node, and holds Ray's replica start until the
    models are ready, so that the proxy never routes to a replica still loading."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        identity: ReplicaIdentity,
        auth_token: str | None,
        ready_timeout_s: float,
        metrics: MetricsEndpoint | None,
    ) -> None:
        self.app = app
        self._headers = [
            (REPLICA_HEADER, identity.replica.encode("latin-1")),
            (NODE_HEADER, identity.node_id.encode("latin-1")),
        ]
        self._auth = {"authorization": f"Bearer {auth_token}"} if auth_token else {}
        self._ready_timeout_s = ready_timeout_s
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # The whole app (Starlette puts itself in the scope): what in-process calls go
            # through, so that routes find `request.app` as they do for any request.
            await self.app(scope, receive, self._lifespan_send(send, scope["app"]))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await self.app(scope, receive, send_stamped)

    def _lifespan_send(self, send: Send, whole_app: ASGIApp) -> Send:
        async def send_when_ready(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                try:
                    await self._wait_ready(whole_app)
                except TimeoutError as exc:
                    message = {"type": "lifespan.startup.failed", "message": str(exc)}
                else:
                    if self._metrics is not None:
                        self._metrics.start(whole_app)
            elif message["type"] == "lifespan.shutdown.complete" and self._metrics is not None:
                self._metrics.stop()
            await send(message)

        return send_when_ready

    async def _wait_ready(self, app: ASGIApp) -> None:
        transport = httpx.ASGITransport(app=app)
        deadline = time.monotonic() + self._ready_timeout_s
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            while time.monotonic() < deadline:
                answer = await client.get("/v2/health/ready", headers=self._auth)
                if answer.status_code == 200:
                    return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"models not ready after {self._ready_timeout_s:g} s")


class MetricsEndpoint:
    """The replica's own `GET /metrics` on a free port of its node's address.

    A thread of its own runs a small uvicorn server that passes `/metrics` (and nothing
    else) to the app, bearer token and all, so Prometheus scrapes each replica apart.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self.address: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, app: ASGIApp) -> None:
        async def only_metrics(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] != "/metrics":
                await _not_found(send)
                return
            await app(scope, receive, send)

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            only_metrics, lifespan="off", log_config=None, access_log=False, timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="metrics", daemon=True
        )
        self._thread.start()
        host = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self.address = f"{host}:{port}"
        log.info("replica metrics on http://%s/metrics", self.address)

    def stop(self) -> None:
        self.address = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)


async def _not_found(send: Send) -> None:
    body = b'{"error": "only /metrics is served on this port"}'
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
