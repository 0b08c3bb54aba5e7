"""The URL fetcher's tests must never become a way onto the network.

Real sockets here go to loopback only. Every other address is checked on
paper (the classifier table), and this guard makes any connection or name
lookup that is not loopback fail the test before a packet leaves: a broken
fetcher fails these tests, it does not reach a metadata service.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest


def _is_loopback_literal(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Fail any connect or lookup that is not loopback; record where connects went.

    httpcore opens sockets with socket.create_connection, and system_resolver
    looks names up with socket.getaddrinfo; both are module attributes, so
    replacing them here covers every way the fetcher can reach the network.
    """
    connects: list[tuple[str, int]] = []
    real_connect = socket.create_connection
    real_lookup = socket.getaddrinfo

    def guarded_connect(address: tuple[str, int], *args: object, **kwargs: object):
        if not _is_loopback_literal(address[0]):
            raise AssertionError(f"test tried to connect to {address}")
        connects.append((address[0], address[1]))
        return real_connect(address, *args, **kwargs)

    def guarded_lookup(host: object, *args: object, **kwargs: object):
        if host != "localhost" and not _is_loopback_literal(host):
            raise AssertionError(f"test tried to look up {host!r}")
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)
    return connects
