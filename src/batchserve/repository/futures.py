"""Futures for the callers of the manager: one of their own each, so that a caller who
stops waiting (a request timing out) never cancels what the others wait for."""

from __future__ import annotations

from concurrent.futures import CancelledError, Future
from typing import TypeVar

from batchserve.errors import ModelNotReady

T = TypeVar("T")


def done(value: T) -> Future[T]:
    """A future that has `value` already."""
    future: Future[T] = Future()
    future.set_result(value)
    return future


def follow(shared: Future[T]) -> Future[T]:
    """A future of the caller's own that completes as `shared` does."""
    mine: Future[T] = Future()

    def copy(finished: Future[T]) -> None:
        if not mine.set_running_or_notify_cancel():
            return  # this caller stopped waiting
        try:
            mine.set_result(finished.result())
        except CancelledError:
            mine.set_exception(ModelNotReady("the load was cancelled: the server is stopping"))
        except BaseException as exc:
            mine.set_exception(exc)

    shared.add_done_callback(copy)
    return mine
