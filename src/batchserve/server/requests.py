"""Request plumbing every route shares, and the one place where client input is parsed:
bodies within their bound, JSON objects, whole numbers in paths, headers and queries,
which model and version a path names; waiting for a result without outliving the
client or the deadline; declaring a model endpoint with and without `/versions/{v}`.

Every parse failure here is a typed client error (`InvalidInput`, `HTTPError`,
`ModelNotFound`): nothing a client sends reaches a `ValueError`, `UnicodeError` or
`RecursionError` that would surface as a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Scope

from batchserve.codecs.json_text import load_json
from batchserve.errors import DeadlineExceeded, InvalidInput, ModelNotFound, PayloadTooLarge
from batchserve.repository.loaded_model import LoadedModel
from batchserve.server.context import context
from batchserve.server.errors import ClientDisconnected, HTTPError
from batchserve.server.middleware import record_model
from batchserve.server.settings import ServerSettings

T = TypeVar("T")


def model_route(router: APIRouter, method: str, path: str) -> Callable[[T], T]:
    """Declare a handler at `path` and at the same path for one version: `{version}`
    goes after `{name}` ("/v1/models/{name}/predict" and
    "/v1/models/{name}/versions/{version}/predict"). The handler reads both from
    `model_path(request)`.

    These are the inference routes, so they are plain Starlette routes: the handler
    takes the `Request` and parses it itself (`read_body`, `read_json_object`), and
    FastAPI's per-request dependency solving, a third of the event loop's time per
    request on the demo model, is not paid for parameters there are none of."""
    if "{name}" not in path:
        raise ValueError(f"{path}: a model route needs {{name}}")
    versioned = path.replace("{name}", "{name}/versions/{version}", 1)

    def declare(handler: T) -> T:
        for route_path in (path, versioned):
            router.routes.append(ModelRoute(route_path, handler, methods=[method]))  # type: ignore[arg-type]
        return handler

    return declare


class ModelRoute(Route):
    """A plain Starlette route that, like FastAPI's own, names itself in the scope: the
    request metrics label a request by its route's template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def model_path(request: Request) -> tuple[str, str | None]:
    """The model name and the version (None: the newest) that the path names."""
    params = request.path_params
    return params["name"], params.get("version")


def is_whole_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit()` also takes '²' and '١', which `int()` refuses
    or reads as another number."""
    return text.isascii() and text.isdigit()


def version_number(name: str, version: str | None) -> int | None:
    """The version a path names as a number (None: the newest); ModelNotFound otherwise."""
    if version is None:
        return None
    if not is_whole_number(version):
        raise ModelNotFound(f"version {version!r} of model {name!r}: versions are numbers")
    return int(version)


def header_number(request: Request, header: str) -> int | None:
    """A header holding a non-negative whole number, None when absent; 400 otherwise."""
    raw = request.headers.get(header)
    if raw is None:
        return None
    raw = raw.strip(" \t")  # HTTP's optional whitespace; str.strip() would also take \x1c
    if not is_whole_number(raw) or len(raw) > 18:
        raise HTTPError(400, f"{header} {raw!r} is not a whole number of bytes")
    return int(raw)


def label_served_model(request: Request, model: LoadedModel, versioned: bool) -> None:
    """Mark the request as served by `model`: the request metrics label it with the
    model's name (and the version, when the path named one). Labels come only from
    models that exist, so a client cannot mint time series with names of its own."""
    record_model(request, model.name, str(model.version) if versioned else "")


async def raise_if_disconnected(request: Request) -> None:
    """ClientDisconnected (499) if the client has hung up: checked before costly work
    (decoding, queueing) that nobody would read. Call only once the body is read."""
    (await watch_disconnect(request)).cancel()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge (413) as soon as it would pass `limit` bytes."""
    size = header_number(request, "content-length")
    if size is not None and size > limit:
        raise PayloadTooLarge(f"body of {size} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(body: bytes, what: str = "the body") -> dict[str, Any]:
    """`body` as a JSON object; anything else is the client's error."""
    doc = load_json(body, what)
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return doc


async def read_json_object(request: Request, limit: int | None = None) -> dict[str, Any]:
    """The body as a JSON object, read within `limit` (default: --max-body-mb)."""
    if limit is None:
        limit = context(request).settings.max_body_bytes
    return parse_json_object(await read_body(request, limit))


def request_timeout(request: Request, model: LoadedModel) -> float:
    """Seconds a request to `model` may take: --request-timeout, or the model's own
    `scheduler.timeout_ms` when that is shorter."""
    return model_timeout(context(request).settings, model)


def model_timeout(settings: ServerSettings, model: LoadedModel) -> float:
    """`request_timeout` for any protocol."""
    timeout = settings.request_timeout_s
    if model.config.scheduler.timeout_ms is not None:
        timeout = min(timeout, model.config.scheduler.timeout_ms / 1000.0)
    return timeout


async def watch_disconnect(request: Request) -> asyncio.Future[None]:
    """A future done once the client disconnects, to pass to `wait_or_disconnect`; or
    ClientDisconnected (499) now if it already has. Started before a request is queued,
    so that an idle worker never takes the request of a client already gone. Call only
    once the body has been read whole; cancel the future when done with it."""
    hung_up = asyncio.ensure_future(_client_gone(request))
    await asyncio.sleep(0)  # the watch's first step: a disconnect already queued is read
    if hung_up.done():
        raise ClientDisconnected("the client closed the connection before its turn")
    return hung_up


async def wait_or_disconnect(
    request: Request,
    waiting: asyncio.Future[T],
    timeout: float,
    *,
    on_abandon: Callable[[], None] | None = None,
    hung_up: asyncio.Future[None] | None = None,
) -> T:
    """The result of `waiting`, unless the client hangs up first (`ClientDisconnected`,
    499: nobody reads the answer) or `timeout` passes (`DeadlineExceeded`). Either way
    `waiting` is cancelled and `on_abandon` called, so work still queued for a client
    that is gone never runs. `hung_up` is a `watch_disconnect` the caller started
    (this call cancels it); without one it starts its own. Call only once the body
    has been read whole."""
    if hung_up is None:
        hung_up = asyncio.ensure_future(_client_gone(request))
    try:
        done, _ = await asyncio.wait(
            {waiting, hung_up}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        hung_up.cancel()
    if waiting not in done:
        waiting.cancel()
        if on_abandon is not None:
            on_abandon()
        if hung_up in done:
            raise ClientDisconnected("the client closed the connection before the result")
        raise DeadlineExceeded(f"no result within the request timeout of {timeout:g} s")
    return waiting.result()


async def _client_gone(request: Request) -> None:
    """Returns once the client disconnects; call only after the body was read whole."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
