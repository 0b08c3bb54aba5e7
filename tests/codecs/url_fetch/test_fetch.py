"""Fetching over real sockets, to loopback servers only (the guard is in conftest.py)."""

from __future__ import annotations

import io
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterator

import pytest
from PIL import Image

from batchserve.codecs.url_fetch import FetchedImage, FetchLimits, FetchPolicy, fetch_image
from batchserve.errors import (
    FetchFailed,
    FetchTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    UrlRefused,
)
from tests.codecs.url_fetch.loopback import (
    LOOPBACK,
    ONE_MB,
    PNG,
    LoopbackServer,
    fake_resolver,
    loopback_policy,
    make_certificates,
    serve,
)


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    yield from serve()


@pytest.fixture(scope="module")
def tls_server(certificates: tuple[bytes, ssl.SSLContext]) -> Iterator[LoopbackServer]:
    _, server_context = certificates
    yield from serve(server_context)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, ssl.SSLContext]:
    """A throwaway CA and a certificate for images.test: (CA PEM, server context)."""
    return make_certificates(tmp_path_factory.mktemp("tls"))


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


@pytest.mark.parametrize("address", ["192.0.0.192", "192.88.99.1", "3fff::1", "64:ff9b::c000:c0"])
def test_a_name_resolving_to_a_special_address_is_refused_before_connecting(
    address: str, loopback_only: list[tuple[str, int]]
) -> None:
    # Public to ipaddress on Python 3.11.7; the resolver hook means no DNS either.
    policy = FetchPolicy(
        allow_private=True,
        allow_loopback=True,
        resolver=fake_resolver({"images.test": [address]}),
    )
    with pytest.raises(UrlRefused, match=f"images.test resolves to {address}.*never fetched"):
        fetch_image("http://images.test/img.png", FetchLimits(), policy)
    assert loopback_only == []


# --- fetching from the loopback server --------------------------------------


def test_loopback_is_refused_by_default(
    server: LoopbackServer, loopback_only: list[tuple[str, int]]
) -> None:
    before = len(server.seen)
    with pytest.raises(UrlRefused, match=r"127\.0\.0\.1 is a loopback address"):
        fetch_image(f"http://{LOOPBACK}:{server.port}/img.png", FetchLimits(), FetchPolicy())
    with pytest.raises(UrlRefused, match=r"localhost resolves to .*, a loopback address"):
        fetch_image(f"http://localhost:{server.port}/img.png", FetchLimits(), FetchPolicy())
    assert loopback_only == []
    assert len(server.seen) == before


def test_fetches_an_image_when_loopback_is_allowed(server: LoopbackServer) -> None:
    url = f"http://{LOOPBACK}:{server.port}/img.png"
    image = fetch_image(url, FetchLimits(), loopback_policy())
    assert image == FetchedImage(PNG, "image/png", url, LOOPBACK, 0)
    assert Image.open(io.BytesIO(image.content)).size == (4, 4)


def test_connects_to_the_checked_address_and_sends_the_real_host(
    server: LoopbackServer, loopback_only: list[tuple[str, int]]
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


def test_any_bad_address_refuses_the_name(server: LoopbackServer) -> None:
    policy = loopback_policy(resolver=fake_resolver({"mixed.test": [LOOPBACK, "10.0.0.1"]}))
    with pytest.raises(UrlRefused, match=r"mixed\.test resolves to 10\.0\.0\.1, a private address"):
        fetch_image(f"http://mixed.test:{server.port}/img.png", FetchLimits(), policy)


def test_https_verifies_the_real_name_over_the_pinned_address(
    tls_server: LoopbackServer, certificates: tuple[bytes, ssl.SSLContext]
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


def test_allowlist_narrows_but_does_not_widen(server: LoopbackServer) -> None:
    url = f"http://{LOOPBACK}:{server.port}/img.png"
    assert fetch_image(url, FetchLimits(), loopback_policy(allow_networks=["127.0.0.0/8"]))
    with pytest.raises(UrlRefused, match=r"not on the operator's allowlist \(10.0.0.0/8\)"):
        fetch_image(url, FetchLimits(), loopback_policy(allow_networks=["10.0.0.0/8"]))
    with pytest.raises(UrlRefused, match="allow_loopback"):
        fetch_image(url, FetchLimits(), FetchPolicy(allow_networks=["127.0.0.0/8"]))


# --- redirects: every hop checked again -------------------------------------


def _allowlisted(server: LoopbackServer) -> tuple[str, FetchPolicy]:
    """images.test is the only allowed host; it lives on loopback, which is allowed."""
    policy = loopback_policy(
        allow_hosts=["images.test"],
        resolver=fake_resolver({"images.test": [LOOPBACK], "metadata.test": ["169.254.169.254"]}),
    )
    return f"http://images.test:{server.port}", policy


def test_follows_a_relative_redirect_on_an_allowed_host(server: LoopbackServer) -> None:
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
    server: LoopbackServer, location: str, message: str
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
    server: LoopbackServer,
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


def test_redirect_limit(server: LoopbackServer) -> None:
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
def test_oversize_body_is_cut_at_the_limit(server: LoopbackServer, path: str, message: str) -> None:
    url = f"http://{LOOPBACK}:{server.port}{path}"
    with pytest.raises(PayloadTooLarge, match=message):
        fetch_image(url, FetchLimits(max_bytes=ONE_MB), loopback_policy())


@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers", "/stall"])
def test_slow_server_is_cut_at_the_total_deadline(server: LoopbackServer, path: str) -> None:
    url = f"http://{LOOPBACK}:{server.port}{path}"
    started = time.monotonic()
    with pytest.raises(FetchTimeout, match="longer than the total limit of 1 s"):
        fetch_image(url, FetchLimits(total_timeout_s=1.0), loopback_policy())
    assert time.monotonic() - started < 3.0


def test_content_type_is_checked(server: LoopbackServer) -> None:
    base = f"http://{LOOPBACK}:{server.port}"
    with pytest.raises(UnsupportedMediaType, match="Content-Type text/html; charset=utf-8"):
        fetch_image(f"{base}/page.html", FetchLimits(), loopback_policy())
    with pytest.raises(UnsupportedMediaType, match="no Content-Type"):
        fetch_image(f"{base}/untyped", FetchLimits(), loopback_policy())
    with pytest.raises(UnsupportedMediaType, match="image/gif"):
        fetch_image(f"{base}/img.gif", FetchLimits(), loopback_policy())
    any_image = loopback_policy(allowed_content_types=["image/*"])
    assert fetch_image(f"{base}/img.gif", FetchLimits(), any_image).content_type == "image/gif"


def test_upstream_errors_are_fetch_failures(server: LoopbackServer) -> None:
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
