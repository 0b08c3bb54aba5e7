"""The special-purpose address blocks, written out from IANA's registries.

The interpreter's own tables (`ipaddress.is_global`, `is_private`...) are not
used: they were corrected only in Python 3.11.10 / 3.12.4, so on earlier patch
levels 192.0.0.192 (a cloud metadata address), 192.88.99.0/24 or 3fff::/20 pass
as public. This table gives the same answer on every Python.

Sources, every row with its name (a few shortened: PCP, TURN, SRP) and its
"Globally Reachable" column:

- IANA IPv4 Special-Purpose Address Registry,
  https://www.iana.org/assignments/iana-ipv4-special-registry/
- IANA IPv6 Special-Purpose Address Registry,
  https://www.iana.org/assignments/iana-ipv6-special-registry/

transcribed from the registries' CSV files (iana-ipv4-special-registry-1.csv,
iana-ipv6-special-registry-1.csv) as published in July 2026. The few rows
marked "outside the registry" come from neighbouring IANA registries: the
multicast spaces, and the IPv6 Address Space registry (2000::/3 is the only
space allocated for global unicast; the rest is "Reserved by IETF", ::/96 and
fec0::/10 are deprecated there). When IANA adds a row, add it here and to the
test's own list (tests/codecs/url_fetch/test_special_addresses.py).

Every row is refused, those the registry marks globally reachable too: they
are anycast service addresses (PCP, TURN, AMT relays, AS112 sinks), whose
nearest instance may well sit inside the server's own network, or identifier
spaces (ORCHIDv2, drone tags); no image is served there. The exceptions are the
forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo,
IPv4-compatible), judged by the address they carry, and 2000::/3 itself. The
most specific block holding an address decides (Teredo inside 2001::/23); an
IPv4 address in no block is public; every IPv6 address is in one (::/0).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The forms of IPv6 address that carry an IPv4 one, by the name messages use.
IPV4_MAPPED = "IPv4-mapped"
IPV4_COMPATIBLE = "IPv4-compatible"
SIX_TO_FOUR = "6to4"
NAT64 = "NAT64"
TEREDO = "Teredo"


@dataclass(frozen=True)
class SpecialBlock:
    """One registry row: the block, its name and RFC, and what it means for a fetch.

    `globally_reachable` is the registry's column: True, False, or None where it
    says N/A or leaves it blank (terminated rows). `category` is why an address
    here is refused ("loopback", "private"...), None when it is not. A block that
    `embeds` an IPv4 address is judged by the embedded address; its `category`
    then says what a public embedded address gets.
    """

    network: IPNetwork
    name: str
    rfc: str
    globally_reachable: bool | None
    category: str | None
    embeds: str | None = None


def _row(
    block: str,
    name: str,
    rfc: str,
    globally_reachable: bool | None,
    category: str | None,
    embeds: str | None = None,
) -> SpecialBlock:
    return SpecialBlock(
        ipaddress.ip_network(block), name, rfc, globally_reachable, category, embeds
    )


IPV4_BLOCKS: tuple[SpecialBlock, ...] = (
    # 0.0.0.0/8 is "unspecified" as a whole: on Linux a connect to 0.x.y.z reaches this machine.
    _row("0.0.0.0/8", '"This network"', "RFC 791", False, "unspecified"),
    _row("0.0.0.0/32", '"This host on this network"', "RFC 1122", False, "unspecified"),
    _row("10.0.0.0/8", "Private-Use", "RFC 1918", False, "private"),
    _row("100.64.0.0/10", "Shared Address Space", "RFC 6598", False, "shared"),
    _row("127.0.0.0/8", "Loopback", "RFC 1122", False, "loopback"),
    _row("169.254.0.0/16", "Link Local", "RFC 3927", False, "link-local"),
    _row("172.16.0.0/12", "Private-Use", "RFC 1918", False, "private"),
    _row("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890", False, "reserved"),
    _row("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", False, "reserved"),
    _row("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", False, "reserved"),
    _row("192.0.0.9/32", "PCP Anycast", "RFC 7723", True, "reserved"),
    _row("192.0.0.10/32", "TURN Anycast", "RFC 8155", True, "reserved"),
    _row("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050", False, "reserved"),
    _row("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050", False, "reserved"),
    _row("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", False, "reserved"),
    _row("192.31.196.0/24", "AS112-v4", "RFC 7535", True, "reserved"),
    _row("192.52.193.0/24", "AMT", "RFC 7450", True, "reserved"),
    _row("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", None, "reserved"),
    _row("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", False, "reserved"),
    _row("192.168.0.0/16", "Private-Use", "RFC 1918", False, "private"),
    _row("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", True, "reserved"),
    _row("198.18.0.0/15", "Benchmarking", "RFC 2544", False, "reserved"),
    _row("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", False, "reserved"),
    _row("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", False, "reserved"),
    _row("240.0.0.0/4", "Reserved", "RFC 1112", False, "reserved"),
    _row("255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919", False, "reserved"),
    # Outside the registry: IANA IPv4 Multicast Address Space.
    _row("224.0.0.0/4", "Multicast", "RFC 5771", False, "multicast"),
)

IPV6_BLOCKS: tuple[SpecialBlock, ...] = (
    _row("::1/128", "Loopback Address", "RFC 4291", False, "loopback"),
    _row("::/128", "Unspecified Address", "RFC 4291", False, "unspecified"),
    _row("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", False, None, IPV4_MAPPED),
    _row("64:ff9b::/96", "IPv4-IPv6 Translation", "RFC 6052", True, None, NAT64),
    # Local-use NAT64: where the IPv4 address sits is the operator's choice, so it is not unwrapped.
    _row("64:ff9b:1::/48", "IPv4-IPv6 Translation (local use)", "RFC 8215", False, "reserved"),
    _row("100::/64", "Discard-Only Address Block", "RFC 6666", False, "reserved"),
    _row("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", False, "reserved"),
    _row("2001::/23", "IETF Protocol Assignments", "RFC 2928", False, "reserved"),
    _row("2001::/32", "TEREDO", "RFC 4380, RFC 8190", None, "reserved", TEREDO),
    _row("2001:1::1/128", "PCP Anycast", "RFC 7723", True, "reserved"),
    _row("2001:1::2/128", "TURN Anycast", "RFC 8155", True, "reserved"),
    _row("2001:1::3/128", "DNS-SD SRP Anycast", "RFC 9665", True, "reserved"),
    _row("2001:2::/48", "Benchmarking", "RFC 5180", False, "reserved"),
    _row("2001:3::/32", "AMT", "RFC 7450", True, "reserved"),
    _row("2001:4:112::/48", "AS112-v6", "RFC 7535", True, "reserved"),
    _row("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", None, "reserved"),
    _row("2001:20::/28", "ORCHIDv2", "RFC 7343", True, "reserved"),
    _row("2001:30::/28", "Drone Remote ID Entity Tags (DETs)", "RFC 9374", True, "reserved"),
    _row("2001:db8::/32", "Documentation", "RFC 3849", False, "reserved"),
    _row("2002::/16", "6to4", "RFC 3056", None, None, SIX_TO_FOUR),
    _row("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", True, "reserved"),
    _row("3fff::/20", "Documentation", "RFC 9637", False, "reserved"),
    _row("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", False, "reserved"),
    _row("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190", False, "private"),
    _row("fe80::/10", "Link-Local Unicast", "RFC 4291", False, "link-local"),
    # Outside the registry: IANA IPv6 Address Space and IPv6 Multicast Address Space.
    _row("::/0", "outside 2000::/3, the global unicast space", "RFC 4291", False, "reserved"),
    _row("2000::/3", "Global Unicast", "RFC 4291", True, None),
    # ::a.b.c.d is deprecated and has no honest use, even with a public address inside.
    _row("::/96", "IPv4-compatible (deprecated)", "RFC 4291", False, "reserved", IPV4_COMPATIBLE),
    _row("fec0::/10", "Site-Local (deprecated)", "RFC 3879", False, "private"),
    _row("ff00::/8", "Multicast", "RFC 4291", False, "multicast"),
)


def _most_specific_first(blocks: tuple[SpecialBlock, ...]) -> tuple[SpecialBlock, ...]:
    return tuple(sorted(blocks, key=lambda b: b.network.prefixlen, reverse=True))


_LOOKUP = {4: _most_specific_first(IPV4_BLOCKS), 6: _most_specific_first(IPV6_BLOCKS)}


def special_block(address: IPAddress) -> SpecialBlock | None:
    """The most specific block that holds `address`; None for an ordinary IPv4 address."""
    for block in _LOOKUP[address.version]:
        if address in block.network:
            return block
    return None


def embedded_ipv4(address: ipaddress.IPv6Address, form: str) -> ipaddress.IPv4Address:
    """The IPv4 address that `address`, of the embedding `form`, carries.

    Computed from the bits, not from `ipaddress` properties, so that it cannot
    change with the Python version.
    """
    bits = int(address)
    if form == SIX_TO_FOUR:  # 2002:AABB:CCDD::/48
        return ipaddress.IPv4Address((bits >> 80) & 0xFFFFFFFF)
    if form == TEREDO:  # the client's address, stored inverted in the low 32 bits
        return ipaddress.IPv4Address(~bits & 0xFFFFFFFF)
    # IPv4-mapped, IPv4-compatible and NAT64's /96: the low 32 bits.
    return ipaddress.IPv4Address(bits & 0xFFFFFFFF)
