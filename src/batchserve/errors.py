"""Typed domain errors.

The layers below the server raise these where a problem is found; `server/`
turns them into HTTP statuses in one place. None of them knows about HTTP.
"""

from __future__ import annotations


class BatchserveError(Exception):
    """Base class of every error batchserve raises on purpose."""


class InvalidInput(BatchserveError):
    """The caller's input is wrong (shape, dtype, undecodable image...)."""


class InvalidParameter(InvalidInput):
    """A request parameter with a wrong type or value, or one that is not supported;
    `param` names it as the request spelled it."""

    def __init__(self, param: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class ImageTooLarge(InvalidInput):
    """An image whose pixel count exceeds the bound (a decompression bomb)."""


class UnsupportedMediaType(InvalidInput):
    """A body whose content type batchserve does not decode."""


class PayloadTooLarge(InvalidInput):
    """A body or download larger than its bound."""


class ModelNotFound(BatchserveError):
    """No such model, or no such version of it."""

    def __init__(self, message: str, available: list[str] | None = None) -> None:
        super().__init__(message)
        self.available = available or []


class ModelNotReady(BatchserveError):
    """The model exists but cannot serve now (loading, failed, over the memory budget)."""


class ModelLoadError(BatchserveError):
    """An artifact or its configuration could not be loaded."""


class ConfigError(ModelLoadError):
    """A model.yaml that does not validate; the message names the file and the field."""


class QueueFull(BatchserveError):
    """The scheduler's queue is at its bound; retry later."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(BatchserveError):
    """The request's deadline passed before it could run; it was never run."""


class SchedulerStopped(BatchserveError):
    """The scheduler no longer accepts work (it is stopping or stopped)."""


class InferenceError(BatchserveError):
    """The runtime failed on this request's input."""


class UrlRefused(InvalidInput):
    """An image URL refused: its scheme, the operator's allowlist, or an address not to reach."""


class FetchFailed(BatchserveError):
    """Fetching an image URL failed upstream: unreachable, an error status, a broken reply."""


class FetchTimeout(FetchFailed):
    """Fetching an image URL took longer than its connect or total time bound."""
