"""Fuzz target: the URL and address checks of the image fetcher, on paper only.

The resolver is a table the test draws; socket lookups and connects are replaced for
the whole module by functions that fail the test, so nothing here reaches a network.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batchserve.codecs.url_fetch import FetchPolicy, check_address, classify_address, fetch
from batchserve.errors import FetchFailed, FetchTimeout, UrlRefused

pytestmark = pytest.mark.fuzz

CATEGORIES = {"unspecified", "loopback", "private", "shared", "link-local", "multicast",
              "reserved"}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def no_network() -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the URL fuzz tried to reach the network: {args!r}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield


@given(st.ip_addresses())
@example(ipaddress.ip_address("192.0.0.192"))
@example(ipaddress.ip_address("::ffff:169.254.169.254"))
def test_every_address_has_a_category_or_is_public(address) -> None:
    category = classify_address(address)
    assert category is None or category in CATEGORIES
    assert classify_address(str(address)) == category
    if isinstance(address, ipaddress.IPv4Address):
        mapped = ipaddress.IPv6Address(f"::ffff:{address}")
        assert classify_address(mapped) == category  # where the packets end up
        sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80) | 1)
        assert classify_address(sixtofour) == category
        if address.is_loopback or address.is_private or address.is_link_local:
            assert category is not None


hosts = st.one_of(
    st.ip_addresses().map(lambda a: f"[{a}]" if a.version == 6 else str(a)),
    st.integers(0, 2**32 - 1).map(str),  # 2130706433 is 127.0.0.1 to some parsers
    st.integers(0, 2**32 - 1).map(hex),
    st.just("0177.0.0.1"),
    st.lists(st.from_regex(r"[a-z0-9-]{0,70}", fullmatch=True), min_size=1, max_size=4).map(
        ".".join
    ),
    st.text(st.characters(codec=None), max_size=12),
)
urls = st.one_of(
    st.builds(
        lambda scheme, user, host, port, path: f"{scheme}://{user}{host}{port}/{path}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "file", "", "gopher"]),
        st.sampled_from(["", "user@", "u:p@", "@"]),
        hosts,
        st.sampled_from(["", ":80", ":0", ":65536", ":99999", ":²", ":-1", ":8080"]),
        st.text(max_size=8),
    ),
    st.text(st.characters(codec=None), max_size=40),
)
answers = st.lists(st.ip_addresses().map(str) | st.just("not-an-address"), max_size=3)


def _encoded_first(host: str, found: list[str]) -> list[str]:
    """The table's answer, after the IDNA encoding that getaddrinfo does before any
    lookup (and that raises UnicodeError for a label over 63 bytes)."""
    host.encode("idna")
    return found


@given(urls, answers, st.booleans(), st.booleans(), st.sampled_from([(), ("10.0.0.0/8",)]))
@example("http://" + "a" * 300 + "/x.jpg", ["8.8.8.8"], False, False, ())
@example("http://a..b/x.jpg", ["8.8.8.8"], False, False, ())
@example("http://\ud800/x.jpg", ["8.8.8.8"], False, False, ())
@example("\ud800", [], False, False, ())  # found by the fuzzer: httpx.URL raised UnicodeError
def test_any_url_is_a_checked_target_or_a_typed_refusal(
    url: str, found: list[str], private: bool, loopback: bool, networks: tuple
) -> None:
    policy = FetchPolicy(
        allow_private=private,
        allow_loopback=loopback,
        allow_networks=networks,
        resolver=lambda host, port: _encoded_first(host, found),
    )
    try:
        target = fetch._check_url(fetch._parse_url(url), policy, time.monotonic() + 5)
    except (UrlRefused, FetchFailed, FetchTimeout):
        return
    assert target.url.scheme in ("http", "https")
    assert 0 < target.port < 65536
    assert target.addresses
    for address in target.addresses:
        assert check_address(address, policy) == address
