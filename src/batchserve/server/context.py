"""The application context: everything the routes share, typed, in one place.

`create_app` builds one `AppContext` and puts it on `app.state.context`; routes and
middleware reach it with `context(request)` and never read loose attributes of
`app.state`.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from starlette.requests import HTTPConnection

from batchserve.codecs.url_fetch import FetchLimits, FetchPolicy
from batchserve.repository.loaded_model import LoadedModel
from batchserve.repository.manager import ModelManager
from batchserve.server.metrics import ServerMetrics
from batchserve.server.settings import ServerSettings

if TYPE_CHECKING:
    from batchserve.server.admission import Admission
    from batchserve.server.grpc.server import GrpcServer

T = TypeVar("T")

#: Parsing or writing this many bytes of tensors costs less than handing the work to
#: the CPU pool and back (a thread wake-up and a loop wake-up, tens of microseconds):
#: such work is done on the event loop, larger work on the pool.
INLINE_WORK_BYTES = 64 * 1024


@dataclass(eq=False)
class AppContext:
    """What one running server holds: its settings, models, metrics and CPU pool."""

    settings: ServerSettings
    manager: ModelManager
    metrics: ServerMetrics
    #: Threads for blocking request work (decode, tensor parsing, encoding).
    cpu_threads: int
    cpu_pool: ThreadPoolExecutor
    fetch_limits: FetchLimits
    fetch_policy: FetchPolicy
    #: Set once the first load of the repository has finished.
    loaded: threading.Event = field(default_factory=threading.Event)
    #: Admission per loaded model version (see `admission.admission_for`).
    admissions: weakref.WeakKeyDictionary[LoadedModel, Admission] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    #: The v2 protocol over gRPC beside the app (--grpc-port), once the lifespan started it.
    grpc_server: GrpcServer | None = None

    async def off_loop(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking work (decode, encode, JSON of big tensors) on the CPU pool."""
        return await asyncio.get_running_loop().run_in_executor(self.cpu_pool, fn, *args)

    async def off_loop_unless_small(self, size: int, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` here when it handles at most `INLINE_WORK_BYTES`, else `off_loop`."""
        if size <= INLINE_WORK_BYTES:
            return fn(*args)
        return await self.off_loop(fn, *args)

    def is_ready(self) -> bool:
        """Readiness: start-up loading is done and there is something to serve."""
        return self.loaded.is_set() and self.manager.is_ready()


def fetch_settings(settings: ServerSettings) -> tuple[FetchLimits, FetchPolicy]:
    """The URL fetcher's limits and policy from the server settings."""
    limits = FetchLimits(max_bytes=settings.url_max_bytes, total_timeout_s=settings.url_timeout_s)
    policy = FetchPolicy(
        allow_hosts=settings.url_allow_hosts,
        allow_networks=settings.url_allow_networks,
        allow_private=settings.url_allow_private,
        allow_loopback=settings.url_allow_loopback,
    )
    return limits, policy


def context(connection: HTTPConnection) -> AppContext:
    """The context of the app serving this request."""
    return connection.app.state.context
