"""Connection-level bounds over raw loopback sockets: idle, header and body timeouts, the
header size bound, and the connection cap, which idle and slow clients cannot fill.

Each test starts its own server with small bounds so that it ends in seconds; every
socket is on 127.0.0.1 and is closed by the test."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import DEMO_REPOSITORY, SAMPLES, LiveServer
from tests.raw_http import RawConnection, build_request, port_of

IMAGE = (SAMPLES / "red_circle.jpg").read_bytes()
BOUNDS = (
    "--idle-timeout", "1", "--header-timeout", "1.5", "--body-timeout", "1.5",
    "--max-header-kb", "8", "--max-connections", "48",
)  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer([DEMO_REPOSITORY], *BOUNDS) as live:
        yield live


def _predict(url: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/models/shapes/predict",
        content=IMAGE,
        headers={"content-type": "image/jpeg"},
        timeout=10,
    )


def _assert_json_error(conn: RawConnection, status: int, *words: str) -> None:
    r = conn.read_response()
    assert r.status == status, r.body
    assert r.headers["content-type"] == "application/json"
    assert r.headers["connection"] == "close"
    message = r.json()["error"]
    for word in words:
        assert word in message, message
    assert conn.closed_by_server(within=2)


def test_a_socket_that_never_sends_is_closed_after_the_idle_timeout(server):
    with RawConnection(port_of(server.url)) as conn:
        started = time.monotonic()
        assert conn.closed_by_server(within=5)
        assert time.monotonic() - started < 4


def test_a_keep_alive_connection_is_closed_after_the_idle_timeout(server):
    with RawConnection(port_of(server.url)) as conn:
        assert conn.request("GET", "/v2/health/live").status == 200
        assert conn.request("GET", "/v2/health/live").status == 200  # still open
        assert conn.closed_by_server(within=5)


def test_headers_that_never_end_get_408(server):
    with RawConnection(port_of(server.url)) as conn:
        conn.send(b"POST /v1/models/shapes/predict HTTP/1.1\r\nHost: x\r\n")
        _assert_json_error(conn, 408, "headers", "1.5 s")


def test_a_header_trickled_a_byte_at_a_time_is_not_kept_alive_by_the_trickle(server):
    """Slowloris: each byte would reset an inactivity timer; the header deadline holds."""
    with RawConnection(port_of(server.url)) as conn:
        started = time.monotonic()
        conn.send(b"GET /v2/health/live HTTP/1.1\r\n")
        for _ in range(40):
            try:
                conn.send(b"X")
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - started > 1.6:
                break
        _assert_json_error(conn, 408, "headers")
        assert time.monotonic() - started < 4


def test_headers_over_the_bound_get_431(server):
    with RawConnection(port_of(server.url)) as conn:
        conn.send(build_request("GET", "/v2/health/live", headers={"x-big": "a" * 9000}))
        _assert_json_error(conn, 431, "8192 bytes")
    with RawConnection(port_of(server.url)) as conn:  # sent in pieces, never finished
        conn.send(b"GET /v2/health/live HTTP/1.1\r\nx-big: ")
        for _ in range(20):
            conn.send(b"a" * 1000)  # still read after the answer: no reset destroys it
        _assert_json_error(conn, 431)


def test_headers_within_the_bound_are_served(server):
    with RawConnection(port_of(server.url)) as conn:
        r = conn.request("GET", "/v2/health/live", headers={"x-big": "a" * 6000})
        assert r.status == 200


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_that_stops_half_way_gets_408(server, framing):
    """`--request-timeout` starts once the body is read; the body has its own bound."""
    with RawConnection(port_of(server.url)) as conn:
        head = b"POST /v1/models/shapes/predict HTTP/1.1\r\nHost: x\r\ncontent-type: image/jpeg\r\n"
        if framing == "chunked":
            conn.send(head + b"transfer-encoding: chunked\r\n\r\n400\r\n" + IMAGE[:1024] + b"\r\n")
        else:
            conn.send(head + b"content-length: %d\r\n\r\n" % len(IMAGE) + IMAGE[:1024])
        _assert_json_error(conn, 408, "body", "1.5 s")


def test_malformed_requests_get_a_json_400(server):
    with RawConnection(port_of(server.url)) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\ncontent-length: nope\r\n\r\n")
        _assert_json_error(conn, 400, "malformed")


def test_idle_and_slow_connections_cannot_fill_the_cap():
    """Over six times --max-connections idle sockets and twice as many trickling a header
    byte at a time (default timeouts): a normal client still gets its answer, in well
    under a second."""
    with LiveServer([DEMO_REPOSITORY], "--max-connections", "48") as server:
        _survive_idle_and_slow(server)


def _survive_idle_and_slow(server: LiveServer) -> None:
    port = port_of(server.url)
    stop = threading.Event()
    idle = [RawConnection(port, timeout=5) for _ in range(300)]
    slow = [RawConnection(port, timeout=5) for _ in range(100)]

    def trickle() -> None:
        for conn in slow:
            conn.sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
        while not stop.is_set():
            for conn in slow:
                with contextlib.suppress(OSError):  # closed to make room, as it should be
                    conn.sock.send(b"X")
            stop.wait(0.5)

    trickler = threading.Thread(target=trickle)
    trickler.start()
    try:
        latencies = []
        for _ in range(8):
            # More attackers keep arriving while the client works.
            idle.extend(RawConnection(port, timeout=5) for _ in range(20))
            started = time.monotonic()
            r = _predict(server.url)
            latencies.append(time.monotonic() - started)
            assert r.status_code == 200, r.text
            assert r.json()["predictions"][0]["label"] == "red circle"
    finally:
        stop.set()
        trickler.join(10)
        for conn in idle + slow:
            conn.close()
    assert statistics.median(latencies) < 1.0, latencies


def test_past_the_cap_with_every_connection_busy_the_answer_is_json_503():
    """When every connection holds a request in progress nothing can be closed to make
    room: the newcomer gets the project's 503 with Retry-After, not uvicorn's text."""
    with LiveServer([DEMO_REPOSITORY], "--max-connections", "8") as live:
        port = port_of(live.url)
        busy = [RawConnection(port) for _ in range(8)]
        try:
            for conn in busy:  # headers done, body never finished: a request in progress
                conn.send(
                    b"POST /v1/models/shapes/predict HTTP/1.1\r\nHost: x\r\n"
                    b"content-type: image/jpeg\r\ncontent-length: 100000\r\n\r\nxx"
                )
            time.sleep(0.3)
            with RawConnection(port) as newcomer:
                newcomer.send(build_request("GET", "/v2/health/live"))
                r = newcomer.read_response()
                assert r.status == 503, r.body
                assert r.headers["retry-after"] == "1"
                assert "connections" in r.json()["error"]
        finally:
            for conn in busy:
                conn.close()
        # Once they are gone, clients are served again.
        assert httpx.get(f"{live.url}/v2/health/live", timeout=10).status_code == 200
