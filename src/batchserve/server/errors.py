"""Domain errors -> HTTP statuses and error bodies, in one place.

The layers below raise typed errors and never build responses; every error a
client sees is JSON `{"error": "..."}`, except under `/openai/`, where it has
OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) so that OpenAI's
client libraries read it. A 500 is a bug: it is logged with the request id, and the
client gets the id, not the traceback.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from batchserve.errors import (
    BatchserveError,
    DeadlineExceeded,
    FetchFailed,
    FetchTimeout,
    ImageTooLarge,
    InferenceError,
    InvalidInput,
    InvalidParameter,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    QueueFull,
    SchedulerStopped,
    UnsupportedMediaType,
    UrlRefused,
)

log = logging.getLogger("batchserve.server")

#: Routes under this prefix speak OpenAI's API, its error shape included.
OPENAI_PREFIX = "/openai/"


class HTTPError(Exception):
    """An error the HTTP layer itself finds (a bad query parameter, a missing header)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ClientDisconnected(HTTPError):
    """The client hung up while its request waited; nobody reads the answer (nginx's 499)."""

    def __init__(self, message: str) -> None:
        super().__init__(499, message)


# Most specific first: the first class an error is an instance of decides.
_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (ImageTooLarge, 422),
    (UrlRefused, 422),
    (InvalidInput, 422),
    # Failure isolation reruns a failed batch one request at a time, so the request an
    # InferenceError reaches is the one whose input the runtime failed on.
    (InferenceError, 422),
    (ModelNotFound, 404),
    (QueueFull, 503),
    (ModelNotReady, 503),
    (SchedulerStopped, 503),
    (ModelLoadError, 503),
    (DeadlineExceeded, 504),
    (FetchTimeout, 504),
    (FetchFailed, 502),
)


def status_for(error: BaseException) -> int:
    for cls, status in _STATUSES:
        if isinstance(error, cls):
            return status
    return 500


def error_body(
    path: str, status: int, message: str, error: BaseException | None = None, **extra: object
) -> dict[str, object]:
    """The JSON of an error on `path`: `{"error": message, **extra}`, or OpenAI's shape
    on its routes (naming the parameter when `error` is an `InvalidParameter`)."""
    if not path.startswith(OPENAI_PREFIX):
        return {"error": message, **extra}
    param = code = None
    if isinstance(error, InvalidParameter):
        param, code = error.param, error.code
    elif isinstance(error, ModelNotFound):
        param, code = "model", "model_not_found"
    elif status == 401:
        code = "invalid_api_key"
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    *,
    path: str = "",
    error: BaseException | None = None,
    **extra: object,
) -> JSONResponse:
    headers = {}
    if status == 503:
        headers["Retry-After"] = "1"
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = error_body(path, status, message, error, **extra)
    return JSONResponse(body, status_code=status, headers=headers)


def client_status(path: str, status: int) -> int:
    """The v2 protocol and OpenAI answer a bad request with 400; /predict uses 422 for
    content it cannot use."""
    if status == 422 and path.startswith(("/v2/", OPENAI_PREFIX)):
        return 400
    return status


async def handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    path = request.url.path
    if isinstance(exc, HTTPError):
        return error_response(exc.status, str(exc), path=path, error=exc)
    status = client_status(path, status_for(exc))
    extra: dict[str, object] = {}
    if isinstance(exc, ModelNotFound) and exc.available:
        extra["available"] = exc.available
    if status == 500:
        return await handle_unexpected(request, exc)
    response = error_response(status, str(exc), path=path, error=exc, **extra)
    if isinstance(exc, QueueFull):
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return response


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id", "-")
    log.error(
        "internal error on %s %s (request id %s)",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return error_response(
        500, "internal server error", path=request.url.path, request_id=request_id
    )


async def handle_client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's ClientDisconnect: the client hung up while its body was being read.
    Nobody reads the answer; it is counted and logged as 499, not as a server error."""
    return error_response(499, "the client closed the connection before sending its body")


EXCEPTION_HANDLERS = {
    ClientDisconnect: handle_client_disconnect,
    HTTPError: handle_domain_error,
    BatchserveError: handle_domain_error,
    Exception: handle_unexpected,
}
