"""The address classifier, on paper: no lookup, no socket."""

from __future__ import annotations

import ipaddress

import pytest

from batchserve.codecs.url_fetch import classify_address


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


@pytest.mark.parametrize(
    ("address", "category"),
    [
        # From the issue: public to ipaddress before Python 3.11.10 / 3.12.4.
        ("192.0.0.192", "reserved"),  # a cloud metadata address, in 192.0.0.0/24
        ("192.88.99.1", "reserved"),  # the deprecated 6to4 relay anycast block
        ("3fff::1", "reserved"),  # the second IPv6 documentation block (RFC 9637)
        ("5f00::1", "reserved"),  # SRv6 SIDs
        ("100:0:0:1::1", "reserved"),  # the dummy IPv6 prefix
        ("2002:c000:c0::1", "reserved"),  # 6to4 of 192.0.0.192
        ("64:ff9b::c000:c0", "reserved"),  # NAT64 of 192.0.0.192
        ("::ffff:192.0.0.192", "reserved"),  # IPv4-mapped 192.0.0.192
        ("2001:0:4136:e378:8000:63bf:3fff:ff3f", "reserved"),  # Teredo of 192.0.0.192
        # Anycast service addresses are refused on IPv4 and IPv6 alike, on any Python.
        ("192.0.0.9", "reserved"),  # PCP anycast
        ("192.31.196.1", "reserved"),  # AS112
        ("2001:1::3", "reserved"),  # DNS-SD SRP anycast
        # Ordinary addresses next to the special blocks stay public.
        ("192.0.1.1", None),
        ("192.88.98.255", None),
        ("4000:0::1", "reserved"),  # outside 2000::/3: not allocated for unicast
        ("3ffe:ffff::1", None),
    ],
)
def test_the_answer_does_not_depend_on_the_python_patch_level(
    address: str, category: str | None
) -> None:
    assert classify_address(address) == category
