"""Loopback HTTP(S) servers for the fetcher's tests, a fake resolver, a throwaway CA."""

from __future__ import annotations

import datetime
import http.server
import io
import pathlib
import socket
import socketserver
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator

from PIL import Image

from batchserve.codecs.url_fetch import FetchPolicy

LOOPBACK = "127.0.0.1"
BIG = 5 * 1024 * 1024
ONE_MB = 1024 * 1024


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


def fake_resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    """A resolver hook that knows only `table` and never asks real DNS."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(f"{host} is not in the test's table")
        return table[host]

    return resolve


def loopback_policy(**overrides: object) -> FetchPolicy:
    return FetchPolicy(allow_loopback=True, **overrides)  # type: ignore[arg-type]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host", "")))
        path, _, query = self.path.partition("?")
        try:
            self._route(path, query)
        except OSError:
            # The client hung up on purpose (a size or time limit).
            self.close_connection = True

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _route(self, path: str, query: str) -> None:
        stop = self.server.stopping
        if path == "/img.png":
            self._send(200, PNG, "image/png")
        elif path == "/img.gif":
            self._send(200, b"GIF89a", "image/gif")
        elif path == "/page.html":
            self._send(200, b"<html>not an image</html>", "text/html; charset=utf-8")
        elif path == "/untyped":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        elif path == "/missing":
            self._send(404, b"no such image", "text/plain")
        elif path == "/redirect":
            self._redirect(urllib.parse.unquote(query.removeprefix("to=")))
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            self._redirect(f"/chain/{left - 1}" if left > 0 else "/img.png")
        elif path == "/relative/here":
            self._redirect("../img.png")
        elif path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            self._write_big(lambda block: self.wfile.write(block))
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._write_big(lambda block: self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block)))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/big-unsized":
            # HTTP/1.0 style: no length at all, the body ends when the connection closes.
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self._write_big(lambda block: self.wfile.write(block))
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):  # 20 s at most; the client should leave after 1 s
                self.wfile.write(b"x")
                self.wfile.flush()
                if stop.wait(0.2):
                    break
        elif path == "/trickle-headers":
            # Every read returns a byte, so no per-read timeout ever fires.
            head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Padding: " + b"x" * 60
            for byte in head:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if stop.wait(0.2):
                    break
            self.close_connection = True
        elif path == "/stall":
            stop.wait(10.0)
        else:
            self._send(404, b"", "text/plain")

    def _write_big(self, write: Callable[[bytes], object]) -> None:
        block = b"\0" * 65536
        for _ in range(BIG // len(block)):
            write(block)


class LoopbackServer(http.server.ThreadingHTTPServer):
    """A test server on 127.0.0.1 that records (path, Host) of every request."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.stopping = threading.Event()
        super().__init__((LOOPBACK, 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks getfqdn() for a name; skip that lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = LOOPBACK, self.server_address[1]

    @property
    def port(self) -> int:
        return self.server_address[1]


def serve(tls: ssl.SSLContext | None = None) -> Iterator[LoopbackServer]:
    server = LoopbackServer(tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_certificates(folder: pathlib.Path) -> tuple[bytes, ssl.SSLContext]:
    """A throwaway CA and a certificate for images.test: (CA PEM, server context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batchserve test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("images.test")]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server_context.sni_names = []  # type: ignore[attr-defined]

    def record_sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        server_context.sni_names.append(name)  # type: ignore[attr-defined]

    server_context.sni_callback = record_sni
    return ca.public_bytes(serialization.Encoding.PEM), server_context
