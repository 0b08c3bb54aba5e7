"""Every block of IANA's special-purpose registries, on paper.

The expectations are a second transcription of the registries, made apart
from `special_addresses.py`: each block with its "Globally Reachable" column
and what an address in it must be classed as (globally reachable rows are
refused too: anycast services and identifier spaces, never an image host).
The first, a middle and the last address of every block are classified and
checked against the most specific block of this list, with the IPv4 address
the IPv6 forms carry read by `ipaddress` itself. No address here is ever connected to.
"""

from __future__ import annotations

import ipaddress

import pytest

from batchserve.codecs.url_fetch import FetchPolicy, check_address, classify_address
from batchserve.codecs.url_fetch.special_addresses import IPV4_BLOCKS, IPV6_BLOCKS
from batchserve.errors import UrlRefused

# The embedded forms: the category is the embedded IPv4 address's, or, when that
# one is public, the one given here.
MAPPED, NAT64, SIX_TO_FOUR = ("mapped", None), ("nat64", None), ("6to4", None)
TEREDO, COMPATIBLE = ("teredo", "reserved"), ("compatible", "reserved")

# (block, globally reachable per the registry (None: N/A or blank), expected class)
REGISTRY: list[tuple[str, bool | None, object]] = [
    # IANA IPv4 Special-Purpose Address Registry
    ("0.0.0.0/8", False, "unspecified"),
    ("0.0.0.0/32", False, "unspecified"),
    ("10.0.0.0/8", False, "private"),
    ("100.64.0.0/10", False, "shared"),
    ("127.0.0.0/8", False, "loopback"),
    ("169.254.0.0/16", False, "link-local"),
    ("172.16.0.0/12", False, "private"),
    ("192.0.0.0/24", False, "reserved"),
    ("192.0.0.0/29", False, "reserved"),
    ("192.0.0.8/32", False, "reserved"),
    ("192.0.0.9/32", True, "reserved"),
    ("192.0.0.10/32", True, "reserved"),
    ("192.0.0.170/32", False, "reserved"),
    ("192.0.0.171/32", False, "reserved"),
    ("192.0.2.0/24", False, "reserved"),
    ("192.31.196.0/24", True, "reserved"),
    ("192.52.193.0/24", True, "reserved"),
    ("192.88.99.0/24", None, "reserved"),
    ("192.88.99.2/32", False, "reserved"),
    ("192.168.0.0/16", False, "private"),
    ("192.175.48.0/24", True, "reserved"),
    ("198.18.0.0/15", False, "reserved"),
    ("198.51.100.0/24", False, "reserved"),
    ("203.0.113.0/24", False, "reserved"),
    ("240.0.0.0/4", False, "reserved"),
    ("255.255.255.255/32", False, "reserved"),
    # IANA IPv4 Multicast Address Space
    ("224.0.0.0/4", False, "multicast"),
    # IANA IPv6 Special-Purpose Address Registry
    ("::1/128", False, "loopback"),
    ("::/128", False, "unspecified"),
    ("::ffff:0:0/96", False, MAPPED),
    ("64:ff9b::/96", True, NAT64),
    ("64:ff9b:1::/48", False, "reserved"),
    ("100::/64", False, "reserved"),
    ("100:0:0:1::/64", False, "reserved"),
    ("2001::/23", False, "reserved"),
    ("2001::/32", None, TEREDO),
    ("2001:1::1/128", True, "reserved"),
    ("2001:1::2/128", True, "reserved"),
    ("2001:1::3/128", True, "reserved"),
    ("2001:2::/48", False, "reserved"),
    ("2001:3::/32", True, "reserved"),
    ("2001:4:112::/48", True, "reserved"),
    ("2001:10::/28", None, "reserved"),
    ("2001:20::/28", True, "reserved"),
    ("2001:30::/28", True, "reserved"),
    ("2001:db8::/32", False, "reserved"),
    ("2002::/16", None, SIX_TO_FOUR),
    ("2620:4f:8000::/48", True, "reserved"),
    ("3fff::/20", False, "reserved"),
    ("5f00::/16", False, "reserved"),
    ("fc00::/7", False, "private"),
    ("fe80::/10", False, "link-local"),
    # IANA IPv6 Address Space and IPv6 Multicast Address Space
    ("::/0", False, "reserved"),
    ("2000::/3", True, None),
    ("::/96", False, COMPATIBLE),
    ("fec0::/10", False, "private"),
    ("ff00::/8", False, "multicast"),
]

_NETWORKS = [(ipaddress.ip_network(block), expected) for block, _, expected in REGISTRY]


def _inner(address: ipaddress.IPv6Address, form: str) -> ipaddress.IPv4Address:
    if form == "mapped":
        assert address.ipv4_mapped is not None
        return address.ipv4_mapped
    if form == "6to4":
        assert address.sixtofour is not None
        return address.sixtofour
    if form == "teredo":
        assert address.teredo is not None
        return address.teredo[1]
    return ipaddress.IPv4Address(address.packed[-4:])


def expected_class(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What `address` must be classed as, by the most specific block above."""
    holding = [(n, e) for n, e in _NETWORKS if n.version == address.version and address in n]
    if not holding:
        assert address.version == 4, f"{address}: every IPv6 address is in ::/0"
        return None
    _, expected = max(holding, key=lambda pair: pair[0].prefixlen)
    if not isinstance(expected, tuple):
        return expected  # type: ignore[return-value]
    form, if_public = expected
    assert isinstance(address, ipaddress.IPv6Address)
    return expected_class(_inner(address, form)) or if_public


def _samples() -> list[tuple[str, str]]:
    points = []
    for network, _ in _NETWORKS:
        for address in (network[0], network[network.num_addresses // 2], network[-1]):
            points.append((str(network), str(address)))
    return points


SAMPLES = _samples()


def test_the_table_holds_every_registry_row_with_its_reachability() -> None:
    table = {(str(b.network), b.globally_reachable) for b in (*IPV4_BLOCKS, *IPV6_BLOCKS)}
    assert table == {(block, reachable) for block, reachable, _ in REGISTRY}
    assert len(IPV4_BLOCKS) + len(IPV6_BLOCKS) == len(REGISTRY)
    for block in (*IPV4_BLOCKS, *IPV6_BLOCKS):
        assert block.name and block.rfc.startswith("RFC ")
        # Nothing special-purpose is open but the forms judged by the IPv4 address they carry.
        open_ = block.category is None
        assert not open_ or block.embeds or str(block.network) == "2000::/3", block


@pytest.mark.parametrize(("block", "address"), SAMPLES, ids=[f"{b}-{a}" for b, a in SAMPLES])
def test_first_middle_and_last_address_of_every_block(block: str, address: str) -> None:
    expected = expected_class(ipaddress.ip_address(address))
    assert classify_address(address) == expected
    if expected is None:
        check_address(address, FetchPolicy())
    else:
        with pytest.raises(UrlRefused):
            check_address(address, FetchPolicy())


def test_the_classifier_never_asks_the_interpreters_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    # Expectations first: expected_class reads the embedded forms with ipaddress.
    expected = {address: expected_class(ipaddress.ip_address(address)) for _, address in SAMPLES}

    def refuse(self: object) -> bool:
        raise AssertionError("the classifier asked ipaddress's own tables")

    for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        for name in ("is_global", "is_private", "is_reserved", "is_loopback", "is_link_local"):
            monkeypatch.setattr(cls, name, property(refuse))
        monkeypatch.setattr(cls, "is_multicast", property(refuse))
        monkeypatch.setattr(cls, "is_unspecified", property(refuse))
    for name in ("is_site_local", "ipv4_mapped", "sixtofour", "teredo"):
        monkeypatch.setattr(ipaddress.IPv6Address, name, property(refuse))

    assert {address: classify_address(address) for address in expected} == expected
