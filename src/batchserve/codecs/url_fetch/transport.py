"""How a fetch reaches the network: one lookup within the deadline, then sockets
that go only to the checked address and never wait past the deadline."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable, Sequence

import httpcore

from batchserve.codecs.url_fetch.special_addresses import IPAddress
from batchserve.errors import FetchFailed, FetchTimeout

Resolver = Callable[[str, int], Sequence[str]]
"""Maps (host name, port) to IP address strings; raises OSError when the name does not resolve."""


def normalise_host(host: str) -> str:
    """A host name as it is compared: lower-case, without spaces or a trailing dot."""
    return host.strip().lower().rstrip(".")


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system (getaddrinfo): every TCP address, in its order."""
    addresses: list[str] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    return addresses


# Lookups run on their own threads so that the deadline bounds them too:
# getaddrinfo itself has no timeout, and a slow DNS server can hold it for many seconds.
_LOOKUPS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="url-fetch-dns")


def resolve(resolver: Resolver, host: str, port: int, deadline: float) -> tuple[IPAddress, ...]:
    """Resolve `host` once with `resolver`, within the deadline."""
    lookup = _LOOKUPS.submit(resolver, host, port)
    try:
        found = lookup.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError as exc:
        lookup.cancel()
        raise FetchTimeout(
            f"resolving {host} did not finish within the fetch's time limit"
        ) from exc
    except OSError as exc:
        raise FetchFailed(f"could not resolve {host}: {exc}") from exc
    try:
        addresses = tuple(ipaddress.ip_address(a) for a in found)
    except ValueError as exc:
        raise FetchFailed(f"resolving {host} gave an invalid address: {exc}") from exc
    if not addresses:
        raise FetchFailed(f"{host} resolves to no address")
    return addresses


def time_left(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    """The shorter of `timeout` and the time until the deadline; raises `error` past it."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the fetch's total time limit passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the deadline.

    httpcore's timeouts are per operation, so a server trickling a byte every
    0.2 s would never trip them; clipping each operation to the time left
    cuts it at the deadline instead.
    """

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        left = time_left(self._deadline, timeout, httpcore.ReadTimeout)
        return self._inner.read(max_bytes, left)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        left = time_left(self._deadline, timeout, httpcore.WriteTimeout)
        self._inner.write(buffer, left)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = time_left(self._deadline, timeout, httpcore.ConnectTimeout)
        return DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """The only way the fetcher opens a socket: to the one address that was checked.

    httpcore asks to connect to the URL's host name; this backend connects to
    the checked IP address instead and never resolves anything, so a DNS
    answer that changes between check and connect (rebinding) changes nothing.
    """

    def __init__(self, host: str, address: IPAddress, deadline: float) -> None:
        self._host = host
        self._address = address
        self._deadline = deadline
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        if normalise_host(host) != self._host:
            raise RuntimeError(f"url_fetch: asked to connect to {host!r}, checked {self._host!r}")
        left = time_left(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = self._sockets.connect_tcp(
            str(self._address), port, left, local_address, socket_options
        )
        return DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise RuntimeError("url_fetch never connects to unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
