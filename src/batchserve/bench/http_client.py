"""The load generator's HTTP/1.1 client: one keep-alive connection, one request at a time.

Requests are wire bytes encoded before the run (`targets`), so sending one is a
single socket write; responses are parsed by httptools' C parser and the body is
only counted (an error's first bytes are kept to show), so a request costs the
generator tens of microseconds of CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httptools

from batchserve.bench.stats import DISCONNECT, PROTOCOL, TIMEOUT, status_kind

#: How much of an error response's body is kept, to show the first error of each kind.
ERROR_BODY_BYTES = 300


class ConnectionClosed(Exception):
    """The server closed the connection before a whole response arrived."""


class ProtocolError(Exception):
    """The response was not valid HTTP/1.1."""


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time; request `i` is
    `request(i)`, the target's rotation."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: Callable[[int], bytes]) -> None:
        self._loop = loop
        self._request = request
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._status = 0
        self._body = bytearray()
        self.transport: asyncio.Transport | None = None
        self.usable = True
        self.last_used = 0.0

    @classmethod
    async def open(
        cls, host: str, port: int, request: Callable[[int], bytes], timeout: float
    ) -> HttpConnection:
        """Connect; raises OSError (refused, unreachable) or TimeoutError."""
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: cls(loop, request), host, port), timeout
        )
        return conn

    async def exchange(self, index: int, timeout: float) -> tuple[str | None, str]:
        """Send request `index`, await its response: (error kind or None, error detail)."""
        try:
            status, body = await self.send(self._request(index), timeout)
        except TimeoutError:
            return TIMEOUT, f"no response within {timeout:g} s"
        except ConnectionClosed as exc:
            return DISCONNECT, str(exc)
        except ProtocolError as exc:
            return PROTOCOL, str(exc)
        kind = status_kind(status)
        return kind, "" if kind is None else body.decode("utf-8", "replace")

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish_error(ProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._finish_error(ProtocolError(str(exc)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._finish_error(ConnectionClosed(str(exc) if exc else "closed by the server"))

    # -- httptools callbacks ----------------------------------------------------------
    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        # Only an error's body is ever shown; keep a prefix, never the whole stream.
        if len(self._body) < ERROR_BODY_BYTES:
            self._body += body[: ERROR_BODY_BYTES - len(self._body)]

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        self._cancel_timer()
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, bytes(self._body)))
        self._body.clear()
        if not keep_alive:
            self.close()

    # -- use ----------------------------------------------------------------------------
    def send(self, wire: bytes, timeout: float) -> asyncio.Future[tuple[int, bytes]]:
        """Write one request; the future gets (status, body prefix) or an exception."""
        assert self.transport is not None and self._waiter is None
        waiter: asyncio.Future[tuple[int, bytes]] = self._loop.create_future()
        self._waiter = waiter
        self._timer = self._loop.call_later(timeout, self._on_timeout)
        self.transport.write(wire)
        return waiter

    def close(self) -> None:
        self.usable = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _on_timeout(self) -> None:
        self._timer = None
        self._finish_error(TimeoutError())
        # A late response would land on the next request: this connection is done.
        if self.transport is not None:
            self.transport.abort()
        self.usable = False

    def _finish_error(self, exc: Exception) -> None:
        self._cancel_timer()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if not isinstance(exc, TimeoutError):
            self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
