"""Connection-level bounds that a hostile client cannot exhaust, on uvicorn's httptools
protocol.

uvicorn itself bounds only the idle time after a response (`timeout_keep_alive`, and
any byte resets it) and the number of connections (`limit_concurrency`, answered in
plain text, and idle sockets count towards it). So 1,000 sockets that never send, or
that send one header byte a second, lock every client out; a 4 MB header is read
whole; a chunked body that stops half-way is waited for forever. Here each phase of
a request has its own bound, measured from the phase's start and not reset by a
trickle of bytes:

- idle: no byte of a (next) request within `idle_timeout_s` -> closed, no answer;
- headers: the first byte to the end of the headers within `header_timeout_s` -> 408;
- header size: more than `max_header_bytes` of request line and headers -> 431;
- body: the end of the headers to the end of the body (chunked too) within
  `body_timeout_s` -> 408;
- connections: past `max_connections`, the connection idle the longest (no request
  in progress: waiting for a request or still sending its headers) is closed to make
  room; only when every connection is busy with a request is the new one answered 503.

Every answer is the project's JSON error with `Connection: close`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("batchserve.server")

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds on one HTTP connection, and how many connections may be open."""

    max_connections: int = 1024
    idle_timeout_s: float = 5.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_header_bytes: int = 64 * 1024


def error_bytes(status: int, message: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 response carrying `{"error": message}`; the connection closes."""
    body = json.dumps({"error": message}).encode()
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    if retry_after is not None:
        head.append(b"retry-after: %d" % retry_after)
    return b"\r\n".join(head) + b"\r\n\r\n" + body


#: How long a refused connection is still read (and its bytes dropped) before it closes.
_LINGER_S = 1.0


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of `ConnectionLimits`
    (from `config.connection_limits`)."""

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = config.connection_limits
        self.limit_concurrency = None  # the cap is ours, answered in JSON
        self.timeout_keep_alive = self.limits.idle_timeout_s  # type: ignore[assignment]
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._header_bytes = 0
        self._over_cap = False
        self._answered = False
        #: Since when the connection has had no request in progress (for eviction).
        self.idle_since = 0.0

    # --- connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.idle_since = self.loop.time()
        # uvicorn arms its idle timer only after a response; a socket that never sends
        # must be closed too.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.idle_timeout_s, self.timeout_keep_alive_handler
        )
        if len(self.connections) > self.limits.max_connections and not self._evict_idlest():
            self._over_cap = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        was_reading = self._reading_headers
        super().data_received(data)
        if self._reading_headers and not self._answered:
            # Headers still incomplete: all of this chunk counts (uvicorn keeps the
            # request line and headers in memory until they are complete).
            self._header_bytes = (self._header_bytes if was_reading else 0) + len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._answer(431, self._too_large())

    def send_400_response(self, msg: str) -> None:
        if not self._answered:
            self._answer(400, f"malformed HTTP request: {msg}")

    # --- parser callbacks ---------------------------------------------------------

    # Once a connection is answered here, the rest of what the parser still reads from
    # the same chunk is ignored: no request starts, nothing reaches the app.

    def on_message_begin(self) -> None:
        if self._answered:
            return
        super().on_message_begin()
        self._reading_headers = True
        self._arm(self.limits.header_timeout_s, self._headers_too_slow)

    def on_url(self, url: bytes) -> None:
        if not self._answered:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._answered:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._answered:
            return
        self._reading_headers = False
        self._disarm()
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.limits.max_header_bytes:
            self._answer(431, self._too_large())
            return
        if self._over_cap:
            if len(self.connections) > self.limits.max_connections:
                self._answer(
                    503,
                    f"the server has {self.limits.max_connections} connections open, each "
                    "with a request in progress; retry shortly",
                    retry_after=1,
                )
                return
            self._over_cap = False
        self._arm(self.limits.body_timeout_s, self._body_too_slow)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._answered:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._answered:
            return
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self.idle_since = self.loop.time()
        super().on_response_complete()

    # --- bounds ---------------------------------------------------------------------

    def _too_large(self) -> str:
        return f"the request line and headers are over {self.limits.max_header_bytes} bytes"

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._answer(
            408, f"the request headers did not arrive within {self.limits.header_timeout_s:g} s"
        )

    def _body_too_slow(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()  # answered already; the rest of the body never came
        else:
            self._answer(
                408, f"the request body did not arrive within {self.limits.body_timeout_s:g} s"
            )
        if cycle is not None and not cycle.response_complete:
            # The app's receive() returns http.disconnect: its handler stops waiting.
            cycle.disconnected = True
            cycle.message_event.set()

    def _evict_idlest(self) -> bool:
        """Close the connection that has been without a request in progress the longest
        (this one excepted); False when every other connection is serving a request."""
        idle = [
            c
            for c in self.connections
            if c is not self
            and isinstance(c, BoundedHttpProtocol)
            and not c._answered
            and (c.cycle is None or c.cycle.response_complete)
        ]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since)
        oldest._answered = True
        oldest.transport.close()
        return True

    def _answer(self, status: int, message: str, retry_after: int | None = None) -> None:
        """Write the JSON error and close; nothing more is read from this connection."""
        self._disarm()
        self._answered = True
        # Debug only: under an attack this runs thousands of times a second, on the loop.
        log.debug("answered %s with %d and closed: %s", self.client, status, message)
        if self.transport.is_closing():
            return
        self.transport.write(error_bytes(status, message, retry_after))
        if self.transport.can_write_eof():
            # A lingering close, as nginx does: send FIN after the answer and read (and
            # drop) what the client still sends for a moment, so that the kernel does
            # not answer those bytes with a reset that can destroy the answer unread.
            self.transport.write_eof()
            self.loop.call_later(_LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
