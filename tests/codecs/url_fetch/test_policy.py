"""The policy: the operator's switches and allowlist over the address classes."""

from __future__ import annotations

import ipaddress

import pytest

from batchserve.codecs.url_fetch import FetchPolicy, check_address
from batchserve.errors import FetchFailed, FetchTimeout, InvalidInput, UrlRefused


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
    ("address", "form"),
    [
        ("2002:7f00:1::1", "6to4"),
        ("2002:a00:1::1", "6to4"),
        ("64:ff9b::7f00:1", "NAT64"),
        ("64:ff9b::a00:1", "NAT64"),
        ("64:ff9b::6440:1", "NAT64"),  # 100.64.0.1, shared
        ("::7f00:1", "IPv4-compatible"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo"),  # client 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo"),  # client 10.0.0.1
    ],
)
def test_the_switches_never_open_a_tunnelled_form(address: str, form: str) -> None:
    # Their packets leave this machine for a relay or translator: allow_loopback and
    # allow_private are about the address itself, so they must not open these.
    everything = FetchPolicy(allow_private=True, allow_loopback=True)
    with pytest.raises(UrlRefused, match=rf"the {form} form of .* is never fetched, even with"):
        check_address(address, everything)


def test_the_switches_open_the_ipv4_mapped_form_like_the_address_itself() -> None:
    everything = FetchPolicy(allow_private=True, allow_loopback=True)
    for address in ("::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:100.64.0.1"):
        assert check_address(address, everything) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("192.0.0.192", r"192\.0\.0\.192 is a reserved .* \(192\.0\.0\.0/24: IETF Protocol"),
        ("192.88.99.1", r"\(192\.88\.99\.0/24: Deprecated \(6to4 Relay Anycast\), RFC 7526\)"),
        ("3fff::1", r"3fff::1 is a reserved .* \(3fff::/20: Documentation, RFC 9637\)"),
        ("4000::1", r"\(outside 2000::/3, the global unicast space, RFC 4291\)"),
        ("2002:c000:c0::1", r"the 6to4 form of 192\.0\.0\.192\) is a reserved .*\(192\.0\.0\.0/24"),
    ],
)
def test_a_refused_special_address_names_its_registry_block(address: str, message: str) -> None:
    everything = FetchPolicy(allow_private=True, allow_loopback=True)
    with pytest.raises(UrlRefused, match=rf"{message}.*; such addresses are never fetched"):
        check_address(address, everything)
