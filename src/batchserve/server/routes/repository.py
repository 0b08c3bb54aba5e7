"""Triton's model repository extension: the index, and loading and unloading a model.

Loads and unloads run on the manager's loader thread; the route waits for the
outcome without holding a thread, as Triton's load answers once it is done.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from batchserve.errors import DeadlineExceeded, ModelNotReady
from batchserve.server.context import context
from batchserve.server.errors import HTTPError
from batchserve.server.requests import parse_json_object, read_body

router = APIRouter(tags=["repository"])

#: A control request is a small JSON object at most.
MAX_CONTROL_BODY = 64 * 1024


@router.post("/v2/repository/index")
async def repository_index(request: Request) -> JSONResponse:
    """Every model version the repository knows: `[{name, version, state, reason}]`.
    `{"ready": true}` in the body keeps only the READY ones."""
    body = await _json_body(request)
    ready_only = body.get("ready") is True
    return JSONResponse(
        [
            {
                "name": s.name,
                "version": str(s.version) if s.version else "",
                "state": s.state,
                "reason": s.reason,
            }
            for s in context(request).manager.index()
            if not ready_only or s.state == "READY"
        ]
    )


@router.post("/v2/repository/models/{name}/load")
async def load_model(request: Request, name: str) -> JSONResponse:
    """Load `name` (or reload it as its store has it now); 400 with the reason if it fails."""
    body = await _json_body(request)
    if body.get("parameters"):
        raise HTTPError(400, "load parameters (config or file overrides) are not supported")
    manager = context(request).manager
    await _outcome(request, manager.request_load(name), f"loading {name!r}")
    return JSONResponse({})


@router.post("/v2/repository/models/{name}/unload")
async def unload_model(request: Request, name: str) -> JSONResponse:
    """Unload every version of `name` once its accepted requests are done."""
    await _json_body(request)
    manager = context(request).manager
    await _outcome(request, manager.request_unload(name), f"unloading {name!r}")
    return JSONResponse({})


async def _outcome(request: Request, future: Future[None], what: str) -> None:
    # A load may profile the model for a few seconds: allow it more than an inference.
    timeout = max(context(request).settings.request_timeout_s, 120.0)
    try:
        # Shielded: the operator asked for it, so it finishes even if this wait gives up.
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
    except TimeoutError:
        raise DeadlineExceeded(
            f"{what} is still running after {timeout:g} s; see POST /v2/repository/index"
        ) from None
    except ModelNotReady as exc:
        raise HTTPError(400, str(exc)) from None


async def _json_body(request: Request) -> dict[str, object]:
    """The control request's JSON object; an empty body is an empty object."""
    raw = await read_body(request, MAX_CONTROL_BODY)
    return parse_json_object(raw) if raw.strip() else {}
