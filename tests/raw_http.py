"""HTTP/1.1 over a raw loopback socket, for what an ordinary client will not send: bytes
that are not UTF-8, headers sent a byte at a time, bodies that stop half-way, several
requests on one connection. Responses are parsed with h11."""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

import h11


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One client connection to 127.0.0.1:`port`; requests go out as the bytes given."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._parser = h11.Connection(h11.CLIENT)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        method: str,
        path: bytes | str,
        body: bytes = b"",
        headers: dict[str, bytes | str] | None = None,
    ) -> RawResponse:
        """Send one request (Content-Length framed) and read its response."""
        self.send(build_request(method, path, body, headers))
        return self.read_response()

    def read_response(self) -> RawResponse:
        status, headers, chunks = 0, {}, []
        while True:
            event = self._parser.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                self._parser.receive_data(data)
                if not data and self._parser.their_state is not h11.DONE:
                    raise ConnectionError("the server closed the connection")
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection")
        if self._parser.our_state is h11.DONE and self._parser.their_state is h11.DONE:
            self._parser.start_next_cycle()
        else:  # the server closes after this response: nothing more can be sent
            self._parser = h11.Connection(h11.CLIENT)
        return RawResponse(status, headers, b"".join(chunks))

    def closed_by_server(self, within: float) -> bool:
        """Whether the server closes the connection (EOF or reset) within `within` seconds."""
        self.sock.settimeout(within)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def reset(self) -> None:
        """Close with a TCP reset instead of a FIN, as a client that crashes does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_request(
    method: str,
    path: bytes | str,
    body: bytes = b"",
    headers: dict[str, bytes | str] | None = None,
) -> bytes:
    """The request's bytes, exactly as given (header values may hold any byte)."""
    lines = [f"{method} ".encode() + (path.encode() if isinstance(path, str) else path)]
    lines[0] += b" HTTP/1.1"
    fields: dict[str, bytes | str] = {"host": "127.0.0.1", "content-length": str(len(body))}
    fields.update(headers or {})
    for name, value in fields.items():
        lines.append(name.encode() + b": " + (value.encode() if isinstance(value, str) else value))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def wait_until(condition: Any, timeout: float, interval: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return condition()
