"""The transport: lookups and every socket operation end by the fetch's deadline."""

from __future__ import annotations

import threading
import time

import httpcore
import pytest

from batchserve.codecs.url_fetch import FetchLimits, fetch_image
from batchserve.codecs.url_fetch.transport import DeadlineStream
from batchserve.errors import FetchTimeout
from tests.codecs.url_fetch.loopback import LOOPBACK, loopback_policy


def test_a_slow_lookup_is_cut_at_the_total_deadline() -> None:
    release = threading.Event()

    def slow_resolver(host: str, port: int) -> list[str]:
        release.wait(5.0)  # a DNS server that does not answer
        return [LOOPBACK]

    started = time.monotonic()
    try:
        with pytest.raises(FetchTimeout, match=r"resolving slow\.test did not finish"):
            fetch_image(
                "http://slow.test/img.png",
                FetchLimits(total_timeout_s=0.5),
                loopback_policy(resolver=slow_resolver),
            )
    finally:
        release.set()
    assert time.monotonic() - started < 2.0


def test_every_socket_operation_is_clipped_to_the_deadline() -> None:
    # httpcore's own timeouts are per read; a byte just before each one would reset
    # them forever. The stream the fetcher reads through must never wait past the deadline.
    asked: list[float | None] = []

    class Recorder(httpcore.NetworkStream):
        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            asked.append(timeout)
            return b"x"

    stream = DeadlineStream(Recorder(), deadline=time.monotonic() + 0.5)
    stream.read(1, timeout=10.0)
    stream.read(1, timeout=None)
    assert all(t is not None and 0 < t <= 0.5 for t in asked)
    expired = DeadlineStream(Recorder(), deadline=time.monotonic() - 0.1)
    with pytest.raises(httpcore.ReadTimeout):
        expired.read(1, timeout=10.0)
    assert len(asked) == 2
