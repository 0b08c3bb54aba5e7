"""One pure ASGI middleware for what every request shares: a request id, the bearer
token check, the request counter and latency, and a structured access log line.

With a token set, every route needs it except the health probes and the browser
page's static files (`GET /` and `/page/...`): they hold no data, and the page must
load before its user can type the token, which it then sends on every API call.
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import os
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchserve.server.errors import error_body
from batchserve.server.metrics import ServerMetrics

access_log = logging.getLogger("batchserve.access")

#: Reachable without the token: an orchestrator's probes carry none, and they say only
#: whether the process is up and whether its models are loaded. A model's own
#: readiness (`/v2/models/{m}/ready`) names a model, so it needs the token.
UNAUTHENTICATED_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
#: The browser page and its assets (static files from the package), read-only.
PAGE_PATHS = ("/", "/page/")
_STATE_MODEL = "metrics_model"
_STATE_VERSION = "metrics_version"


class RequestIds:
    """Request ids (32 hex digits) unique across processes and restarts, without a uuid4
    per request (an `os.urandom` call, the event loop's largest cost on a small model):
    a random prefix drawn once, then a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"  # 32 hex digits, like a uuid4


def is_public(scope: Scope) -> bool:
    """Reachable without the token: the health probes, and GET of the page's files."""
    path = scope["path"]
    if path in UNAUTHENTICATED_PATHS:
        return True
    page = path == PAGE_PATHS[0] or (path.startswith(PAGE_PATHS[1]) and ".." not in path)
    return page and scope["method"] in ("GET", "HEAD")


def record_model(request: Request, name: str, version: str = "") -> None:
    """Label this request's metrics with the model that serves it (and the version, when
    the request named one); call once the model is found, so no client mints series."""
    state = request.scope.setdefault("state", {})
    state[_STATE_MODEL] = name
    state[_STATE_VERSION] = version


class RequestContextMiddleware:
    """What every HTTP request goes through first: its request id (`X-Request-ID`, echoed
    or made), the bearer-token check, the request counter and latency by route, and one
    access-log line. Pure ASGI, so streamed responses pass through untouched."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics, auth_token: str | None) -> None:
        self.app = app
        self.metrics = metrics
        self._expected = f"Bearer {auth_token}".encode() if auth_token else None
        self._ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or self._ids.next()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            if self._expected is not None and not is_public(scope):
                given = headers.get(b"authorization", b"")
                if not hmac.compare_digest(given, self._expected):
                    await _unauthorized(scope["path"], send_with_context)
                    return
            await self.app(scope, receive, send_with_context)
        finally:
            self._record(scope, status, time.perf_counter() - started, request_id)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        # Labels only from the model that served the request (`record_model`), never
        # from the path: a client must not be able to mint time series.
        state = scope.get("state", {})
        model = state.get(_STATE_MODEL, "")
        version = state.get(_STATE_VERSION, "")
        self.metrics.requests.labels(model, version, template, str(status)).inc()
        if model:
            self.metrics.latency.labels(model, template).observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round(seconds * 1000, 2),
                        "model": model or None,
                        "version": version or None,
                        "client": f"{client[0]}:{client[1]}" if client else None,
                    }
                )
            )


async def _unauthorized(path: str, send: Send) -> None:
    body = json.dumps(error_body(path, 401, "missing or wrong bearer token")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
