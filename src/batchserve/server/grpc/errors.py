"""Domain errors -> gRPC status codes, in one place (as `server/errors.py` does for HTTP).

| error | code | HTTP |
| --- | --- | --- |
| `PayloadTooLarge` | RESOURCE_EXHAUSTED (gRPC's own code for an over-size message) | 413 |
| `InvalidInput` and the rest of its kind | INVALID_ARGUMENT | 400 / 415 / 422 |
| `InferenceError` (the runtime failed on this request's input) | INVALID_ARGUMENT | 422 |
| `ModelNotFound` | NOT_FOUND | 404 |
| `QueueFull`, `ModelNotReady`, `SchedulerStopped`, `ModelLoadError` | UNAVAILABLE | 503 |
| `DeadlineExceeded`, `FetchTimeout` | DEADLINE_EXCEEDED | 504 |
| `FetchFailed` | UNAVAILABLE | 502 |
| a wrong or missing bearer token (`auth.py`) | UNAUTHENTICATED | 401 |
| anything else: a bug, logged with the call | INTERNAL | 500 |

A full queue is UNAVAILABLE, not RESOURCE_EXHAUSTED: it is the code gRPC clients
and retry policies treat as "transient, safe to retry" (and the one Triton uses),
while RESOURCE_EXHAUSTED is what gRPC answers for an over-size message, which no
retry fixes. UNAVAILABLE carries trailing `retry-after` metadata, the seconds to
wait, as the HTTP header does.
"""

from __future__ import annotations

import grpc

from batchserve.errors import (
    DeadlineExceeded,
    FetchFailed,
    FetchTimeout,
    InferenceError,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    QueueFull,
    SchedulerStopped,
)


class RpcError(Exception):
    """An error the gRPC layer itself finds (a load with overrides, an unknown method)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


# Most specific first: the first class an error is an instance of decides.
_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    # Failure isolation reruns a failed batch one request at a time, so the request an
    # InferenceError reaches is the one whose input the runtime failed on.
    (InferenceError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (QueueFull, grpc.StatusCode.UNAVAILABLE),
    (ModelNotReady, grpc.StatusCode.UNAVAILABLE),
    (SchedulerStopped, grpc.StatusCode.UNAVAILABLE),
    (ModelLoadError, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (FetchTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (FetchFailed, grpc.StatusCode.UNAVAILABLE),
)


def code_for(error: BaseException) -> grpc.StatusCode:
    """The status code a client gets for `error`; INTERNAL for anything unexpected."""
    if isinstance(error, RpcError):
        return error.code
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def message_for(error: BaseException) -> str:
    """What the client reads: the error's own words, with the models there are for a
    missing one (as the HTTP body's `available`)."""
    message = str(error)
    if isinstance(error, ModelNotFound) and error.available:
        message += f" (available: {', '.join(error.available)})"
    return message


def trailing_metadata_for(error: BaseException) -> tuple[tuple[str, str], ...]:
    if isinstance(error, QueueFull):
        return (("retry-after", str(max(1, round(error.retry_after_s)))),)
    if code_for(error) is grpc.StatusCode.UNAVAILABLE:
        return (("retry-after", "1"),)
    return ()
