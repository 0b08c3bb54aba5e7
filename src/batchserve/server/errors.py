"""Domain errors -> HTTP statuses, in one place.

The layers below raise typed errors and never build responses; every error a
client sees is JSON `{"error": "..."}`. A 500 is a bug: it is logged with the
request id, and the client gets the id, not the traceback.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from batchserve.errors import (
    BatchserveError,
    DeadlineExceeded,
    FetchFailed,
    FetchTimeout,
    ImageTooLarge,
    InferenceError,
    InvalidInput,
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


def error_response(status: int, message: str, **extra: object) -> JSONResponse:
    headers = {}
    if status == 503:
        headers["Retry-After"] = "1"
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


async def handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, HTTPError):
        return error_response(exc.status, str(exc))
    status = status_for(exc)
    # The v2 protocol answers a bad request with 400; /predict uses 422 for bad content.
    if status == 422 and request.url.path.startswith("/v2/"):
        status = 400
    extra: dict[str, object] = {}
    if isinstance(exc, ModelNotFound) and exc.available:
        extra["available"] = exc.available
    if status == 500:
        return await handle_unexpected(request, exc)
    response = error_response(status, str(exc), **extra)
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
    return error_response(500, "internal server error", request_id=request_id)


EXCEPTION_HANDLERS = {
    HTTPError: handle_domain_error,
    BatchserveError: handle_domain_error,
    Exception: handle_unexpected,
}
