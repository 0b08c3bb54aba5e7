"""Which addresses a fetch may reach: each address classified by the IANA table.

Pure functions of the address, with no lookup and no socket, so that every
block can be tested on paper.
"""

from __future__ import annotations

import ipaddress

from batchserve.codecs.url_fetch.special_addresses import (
    IPV4_MAPPED,
    IPAddress,
    SpecialBlock,
    embedded_ipv4,
    special_block,
)

#: What each category means, for messages.
CATEGORY_TEXT = {
    "unspecified": "an unspecified address (it reaches this machine)",
    "loopback": "a loopback address",
    "private": "a private address",
    "shared": "in the shared address space 100.64.0.0/10 (carrier-grade NAT)",
    "link-local": "a link-local address (where cloud metadata services such as "
    "169.254.169.254 live)",
    "multicast": "a multicast address",
    "reserved": "a reserved or special-purpose address",
}


def parse_address(ip: str | IPAddress) -> IPAddress:
    """`ip` as an address object; raises ValueError when it is not one."""
    return ip if isinstance(ip, IPAddress) else ipaddress.ip_address(ip)


def classify_address(ip: str | IPAddress) -> str | None:
    """Why an address must not be fetched ("loopback", "private", "link-local"...), or None.

    None means a public, globally reachable address. An IPv6 address that
    embeds an IPv4 one (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo) gets
    the category of the embedded address, because that is where the packets
    end up.
    """
    return deciding_block(parse_address(ip))[0]


def deciding_block(address: IPAddress) -> tuple[str | None, SpecialBlock | None]:
    """The category of `address` and the registry block that decided it (None: no block)."""
    block = special_block(address)
    if block is None or block.embeds is None:
        return (block.category if block else None), block
    assert isinstance(address, ipaddress.IPv6Address)
    category, inner_block = deciding_block(embedded_ipv4(address, block.embeds))
    if category is not None:
        return category, inner_block
    # A public address inside: the form's own verdict (None for the forms that are routed).
    return block.category, block


def describe(address: IPAddress) -> str:
    """'::ffff:127.0.0.1 (the IPv4-mapped form of 127.0.0.1)', or just the address."""
    if isinstance(address, ipaddress.IPv6Address):
        block = special_block(address)
        if block is not None and block.embeds is not None:
            inner = embedded_ipv4(address, block.embeds)
            # Python < 3.13 prints ::ffff:127.0.0.1 as ::ffff:7f00:1; show the usual spelling.
            shown = f"::ffff:{inner}" if block.embeds == IPV4_MAPPED else str(address)
            return f"{shown} (the {block.embeds} form of {inner})"
    return str(address)
