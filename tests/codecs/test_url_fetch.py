"""The URL fetcher must never become a way into the server's network.

Real sockets here go to loopback only. Every other address is checked on
paper (the classifier table), and a guard fixture makes any connection or
name lookup that is not loopback fail the test before a packet leaves: a
broken fetcher fails these tests, it does not reach a metadata service.
"""

from __future__ import annotations

import datetime
import http.server
import io
import ipaddress
import socket
import socketserver
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator

import httpcore
import pytest
from PIL import Image

from batchserve.codecs.url_fetch import (
    FetchedImage,
    FetchLimits,
    FetchPolicy,
    _DeadlineStream,
    check_address,
    classify_address,
    fetch_image,
)
from batchserve.errors import (
    FetchFailed,
    FetchTimeout,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMediaType,
    UrlRefused,
)

LOOPBACK = "127.0.0.1"
BIG = 5 * 1024 * 1024
ONE_MB = 1024 * 1024


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


# --- the network guard ------------------------------------------------------


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


def fake_resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    """A resolver hook that knows only `table` and never asks real DNS."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(f"{host} is not in the test's table")
        return table[host]

    return resolve


# --- the loopback test servers ----------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _LoopbackServer

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


class _LoopbackServer(http.server.ThreadingHTTPServer):
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


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[_LoopbackServer]:
    server = _LoopbackServer(tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def server() -> Iterator[_LoopbackServer]:
    yield from _serve()


@pytest.fixture(scope="module")
def tls_server(certificates: tuple[bytes, ssl.SSLContext]) -> Iterator[_LoopbackServer]:
    _, server_context = certificates
    yield from _serve(server_context)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, ssl.SSLContext]:
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
    folder = tmp_path_factory.mktemp("tls")
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


def loopback_policy(**overrides: object) -> FetchPolicy:
    return FetchPolicy(allow_loopback=True, **overrides)  # type: ignore[arg-type]


# --- the classifier, on paper -----------------------------------------------


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::7f00:1", "loopback"),  # IPv4-compatible 127.0.0.1
        ("::8.8.8.8", "reserved"),  # IPv4-compatible is deprecated even around a public address
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("2606:4700:4700::1111", None),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
    ],
)
def test_classify_address(address: str, category: str | None) -> None:
    assert classify_address(address) == category
    assert classify_address(ipaddress.ip_address(address)) == category


def test_check_address_follows_the_switches() -> None:
    default = FetchPolicy()
    with pytest.raises(
        UrlRefused, match=r"resolves to 127\.0\.0\.1, a loopback address; the operator"
    ):
        check_address("127.0.0.1", default, host="images.test")
    with pytest.raises(UrlRefused, match=r"::ffff:127\.0\.0\.1 \(the IPv4-mapped form"):
        check_address("::ffff:127.0.0.1", default)
    assert str(check_address("127.0.0.1", FetchPolicy(allow_loopback=True))) == "127.0.0.1"
    assert str(check_address("8.8.8.8", default)) == "8.8.8.8"

    on_premise = FetchPolicy(allow_private=True)
    check_address("10.1.2.3", on_premise)
    check_address("100.64.0.1", on_premise)
    with pytest.raises(UrlRefused, match="allow_loopback"):
        check_address("127.0.0.1", on_premise)
    # No switch opens the metadata service, multicast or 0.0.0.0.
    everything = FetchPolicy(allow_private=True, allow_loopback=True)
    for address in ("169.254.169.254", "64:ff9b::a9fe:a9fe", "224.0.0.1", "0.0.0.0"):
        with pytest.raises(UrlRefused, match="never fetched"):
            check_address(address, everything)


def test_refused_is_invalid_input_and_timeout_is_a_failure() -> None:
    # The server maps by class: UrlRefused -> 4xx with InvalidInput, FetchTimeout -> 504.
    assert issubclass(UrlRefused, InvalidInput)
    assert issubclass(FetchTimeout, FetchFailed)


def test_policy_refuses_a_bad_network() -> None:
    with pytest.raises(ValueError, match="not-a-cidr"):
        FetchPolicy(allow_networks=["not-a-cidr"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("ftp://images.test/img.png", "scheme 'ftp'"),
        ("gopher://images.test:70/_GET", "scheme 'gopher'"),
        ("//images.test/img.png", "no scheme"),
        ("http://user:secret@images.test/img.png", "user name or password"),
        ("http://images.test:99999/img.png", "port 99999"),
    ],
)
def test_refuses_urls_that_are_not_plain_http(
    url: str, message: str, loopback_only: list[tuple[str, int]]
) -> None:
    policy = loopback_policy(resolver=fake_resolver({"images.test": [LOOPBACK]}))
    with pytest.raises(UrlRefused, match=message):
        fetch_image(url, FetchLimits(), policy)
    assert loopback_only == []


# --- fetching from the loopback server --------------------------------------


def test_loopback_is_refused_by_default(
    server: _LoopbackServer, loopback_only: list[tuple[str, int]]
) -> None:
    before = len(server.seen)
    with pytest.raises(UrlRefused, match=r"127\.0\.0\.1 is a loopback address"):
        fetch_image(f"http://{LOOPBACK}:{server.port}/img.png", FetchLimits(), FetchPolicy())
    with pytest.raises(UrlRefused, match=r"localhost resolves to .*, a loopback address"):
        fetch_image(f"http://localhost:{server.port}/img.png", FetchLimits(), FetchPolicy())
    assert loopback_only == []
    assert len(server.seen) == before


def test_fetches_an_image_when_loopback_is_allowed(server: _LoopbackServer) -> None:
    url = f"http://{LOOPBACK}:{server.port}/img.png"
    image = fetch_image(url, FetchLimits(), loopback_policy())
    assert image == FetchedImage(PNG, "image/png", url, LOOPBACK, 0)
    assert Image.open(io.BytesIO(image.content)).size == (4, 4)


def test_connects_to_the_checked_address_and_sends_the_real_host(
    server: _LoopbackServer, loopback_only: list[tuple[str, int]]
) -> None:
    lookups: list[str] = []

    def rebinding_resolver(host: str, port: int) -> list[str]:
        # A rebinding DNS server: harmless the first time, the metadata service after.
        lookups.append(host)
        return [LOOPBACK] if len(lookups) == 1 else ["169.254.169.254"]

    image = fetch_image(
        f"http://images.test:{server.port}/img.png",
        FetchLimits(),
        loopback_policy(resolver=rebinding_resolver),
    )
    assert image.content == PNG
    assert image.address == LOOPBACK
    assert lookups == ["images.test"]
    assert loopback_only == [(LOOPBACK, server.port)]
    assert server.seen[-1] == ("/img.png", f"images.test:{server.port}")


def test_any_bad_address_refuses_the_name(server: _LoopbackServer) -> None:
    policy = loopback_policy(resolver=fake_resolver({"mixed.test": [LOOPBACK, "10.0.0.1"]}))
    with pytest.raises(UrlRefused, match=r"mixed\.test resolves to 10\.0\.0\.1, a private address"):
        fetch_image(f"http://mixed.test:{server.port}/img.png", FetchLimits(), policy)


def test_https_verifies_the_real_name_over_the_pinned_address(
    tls_server: _LoopbackServer, certificates: tuple[bytes, ssl.SSLContext]
) -> None:
    ca_pem, server_context = certificates
    client_context = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    resolver = fake_resolver({"images.test": [LOOPBACK], "other.test": [LOOPBACK]})
    policy = loopback_policy(resolver=resolver, ssl_context=client_context)

    image = fetch_image(f"https://images.test:{tls_server.port}/img.png", FetchLimits(), policy)
    assert image.content == PNG
    assert server_context.sni_names[-1] == "images.test"  # type: ignore[attr-defined]
    assert tls_server.seen[-1] == ("/img.png", f"images.test:{tls_server.port}")

    # Same address, another name: the certificate for images.test must not pass for it.
    with pytest.raises(FetchFailed, match="CERTIFICATE_VERIFY_FAILED"):
        fetch_image(f"https://other.test:{tls_server.port}/img.png", FetchLimits(), policy)


def test_allowlist_narrows_but_does_not_widen(server: _LoopbackServer) -> None:
    url = f"http://{LOOPBACK}:{server.port}/img.png"
    assert fetch_image(url, FetchLimits(), loopback_policy(allow_networks=["127.0.0.0/8"]))
    with pytest.raises(UrlRefused, match=r"not on the operator's allowlist \(10.0.0.0/8\)"):
        fetch_image(url, FetchLimits(), loopback_policy(allow_networks=["10.0.0.0/8"]))
    with pytest.raises(UrlRefused, match="allow_loopback"):
        fetch_image(url, FetchLimits(), FetchPolicy(allow_networks=["127.0.0.0/8"]))


# --- redirects: every hop checked again -------------------------------------


def _allowlisted(server: _LoopbackServer) -> tuple[str, FetchPolicy]:
    """images.test is the only allowed host; it lives on loopback, which is allowed."""
    policy = loopback_policy(
        allow_hosts=["images.test"],
        resolver=fake_resolver({"images.test": [LOOPBACK], "metadata.test": ["169.254.169.254"]}),
    )
    return f"http://images.test:{server.port}", policy


def test_follows_a_relative_redirect_on_an_allowed_host(server: _LoopbackServer) -> None:
    base, policy = _allowlisted(server)
    image = fetch_image(f"{base}/relative/here", FetchLimits(), policy)
    assert image.content == PNG
    assert image.url == f"{base}/img.png"
    assert image.redirects == 1


@pytest.mark.parametrize(
    ("location", "message"),
    [
        # Loopback is allowed, but this host is not on the allowlist.
        ("http://127.0.0.1:{port}/img.png", "127.0.0.1 is not on the operator's allowlist"),
        ("http://[::ffff:127.0.0.1]:{port}/img.png", "is not on the operator's allowlist"),
        ("file:///etc/passwd", "scheme 'file'"),
    ],
)
def test_redirect_off_the_allowlist_is_refused(
    server: _LoopbackServer, location: str, message: str
) -> None:
    base, policy = _allowlisted(server)
    query = "to=" + urllib.parse.quote(location.format(port=server.port), safe="")
    before = len(server.seen)
    with pytest.raises(UrlRefused, match=f"refused redirect 1 from {base}/redirect.*{message}"):
        fetch_image(f"{base}/redirect?{query}", FetchLimits(), policy)
    assert server.seen[before:] == [(f"/redirect?{query}", f"images.test:{server.port}")]


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://127.0.0.1:{port}/", "scheme 'gopher'"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://metadata.test/latest/", "metadata.test resolves to 169.254.169.254"),
        ("http://[64:ff9b::a9fe:a9fe]/latest/", "the NAT64 form of 169.254.169.254"),
        ("http://[::ffff:10.0.0.1]/", "the IPv4-mapped form of 10.0.0.1"),
        ("http://0.0.0.0:{port}/img.png", "unspecified address"),
    ],
)
def test_redirect_to_a_forbidden_address_is_refused(
    server: _LoopbackServer,
    location: str,
    message: str,
    loopback_only: list[tuple[str, int]],
) -> None:
    # Loopback is allowed, so only the re-check of the redirect can stop these.
    policy = loopback_policy(resolver=fake_resolver({"metadata.test": ["169.254.169.254"]}))
    query = "to=" + urllib.parse.quote(location.format(port=server.port), safe="")
    url = f"http://{LOOPBACK}:{server.port}/redirect?{query}"
    with pytest.raises(UrlRefused, match=f"refused redirect 1 .*{message}"):
        fetch_image(url, FetchLimits(), policy)
    assert loopback_only == [(LOOPBACK, server.port)]


def test_redirect_limit(server: _LoopbackServer) -> None:
    base = f"http://{LOOPBACK}:{server.port}"
    limits = FetchLimits(max_redirects=2)
    image = fetch_image(f"{base}/chain/1", limits, loopback_policy())  # 2 redirects
    assert image.redirects == 2
    with pytest.raises(
        UrlRefused, match=r"redirects more than 2 times \(the redirect limit is 2\)"
    ):
        fetch_image(f"{base}/chain/2", limits, loopback_policy())  # 3 redirects
    with pytest.raises(UrlRefused, match="redirect limit is 0"):
        fetch_image(f"{base}/chain/0", FetchLimits(max_redirects=0), loopback_policy())


# --- size, time and type ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/big", "declares 5242880 bytes"),
        ("/big-chunked", "sent more than the limit of 1048576 bytes"),
        ("/big-unsized", "sent more than the limit of 1048576 bytes"),
    ],
)
def test_oversize_body_is_cut_at_the_limit(
    server: _LoopbackServer, path: str, message: str
) -> None:
    url = f"http://{LOOPBACK}:{server.port}{path}"
    with pytest.raises(PayloadTooLarge, match=message):
        fetch_image(url, FetchLimits(max_bytes=ONE_MB), loopback_policy())


@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers", "/stall"])
def test_slow_server_is_cut_at_the_total_deadline(server: _LoopbackServer, path: str) -> None:
    url = f"http://{LOOPBACK}:{server.port}{path}"
    started = time.monotonic()
    with pytest.raises(FetchTimeout, match="longer than the total limit of 1 s"):
        fetch_image(url, FetchLimits(total_timeout_s=1.0), loopback_policy())
    assert time.monotonic() - started < 3.0


def test_content_type_is_checked(server: _LoopbackServer) -> None:
    base = f"http://{LOOPBACK}:{server.port}"
    with pytest.raises(UnsupportedMediaType, match="Content-Type text/html; charset=utf-8"):
        fetch_image(f"{base}/page.html", FetchLimits(), loopback_policy())
    with pytest.raises(UnsupportedMediaType, match="no Content-Type"):
        fetch_image(f"{base}/untyped", FetchLimits(), loopback_policy())
    with pytest.raises(UnsupportedMediaType, match="image/gif"):
        fetch_image(f"{base}/img.gif", FetchLimits(), loopback_policy())
    any_image = loopback_policy(allowed_content_types=["image/*"])
    assert fetch_image(f"{base}/img.gif", FetchLimits(), any_image).content_type == "image/gif"


def test_upstream_errors_are_fetch_failures(server: _LoopbackServer) -> None:
    with pytest.raises(FetchFailed, match="answered HTTP 404"):
        fetch_image(f"http://{LOOPBACK}:{server.port}/missing", FetchLimits(), loopback_policy())

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind((LOOPBACK, 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(FetchFailed, match=f"could not connect to 127.0.0.1:{closed_port}"):
        fetch_image(f"http://{LOOPBACK}:{closed_port}/img.png", FetchLimits(), loopback_policy())

    policy = loopback_policy(resolver=fake_resolver({}))
    with pytest.raises(FetchFailed, match=r"could not resolve nowhere\.test"):
        fetch_image("http://nowhere.test/img.png", FetchLimits(), policy)


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

    stream = _DeadlineStream(Recorder(), deadline=time.monotonic() + 0.5)
    stream.read(1, timeout=10.0)
    stream.read(1, timeout=None)
    assert all(t is not None and 0 < t <= 0.5 for t in asked)
    expired = _DeadlineStream(Recorder(), deadline=time.monotonic() - 0.1)
    with pytest.raises(httpcore.ReadTimeout):
        expired.read(1, timeout=10.0)
    assert len(asked) == 2
