"""What a fetch may reach: the operator's policy, the cost limits, the address check."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from batchserve.codecs.images import IMAGE_MEDIA_TYPES
from batchserve.codecs.url_fetch.addresses import (
    CATEGORY_TEXT,
    deciding_block,
    describe,
    parse_address,
)
from batchserve.codecs.url_fetch.special_addresses import (
    IPV4_MAPPED,
    IPAddress,
    IPNetwork,
    special_block,
)
from batchserve.codecs.url_fetch.transport import Resolver, normalise_host, system_resolver
from batchserve.errors import UrlRefused

_NEVER = "such addresses are never fetched"
_SWITCHED = {"loopback": "allow_loopback", "private": "allow_private", "shared": "allow_private"}


@dataclass(frozen=True)
class FetchLimits:
    """How much one fetch may cost: bytes, connect time, total time, redirects."""

    max_bytes: int = 10 * 1024 * 1024
    connect_timeout_s: float = 3.0
    # One deadline over the whole fetch: lookups, redirects and slow bodies.
    total_timeout_s: float = 10.0
    max_redirects: int = 3

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {self.max_bytes}")
        if self.connect_timeout_s <= 0 or self.total_timeout_s <= 0:
            raise ValueError("connect_timeout_s and total_timeout_s must be positive")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must be 0 or more, not {self.max_redirects}")


@dataclass(frozen=True)
class FetchPolicy:
    """What may be fetched: the operator's allowlist, the address switches, the media types.

    The allowlist (`allow_hosts`, `allow_networks`) only narrows: when either is
    set, a URL's host must be a listed name ("*.example.com" matches subdomains)
    or every address it resolves to must lie in a listed network. It never
    widens: a listed name or network that is loopback or private still needs
    `allow_loopback` or `allow_private`, so a re-pointed DNS name or a careless
    "0.0.0.0/0" cannot open the metadata service. Link-local, multicast,
    reserved and unspecified addresses are never fetched, nor the 6to4, NAT64,
    Teredo or IPv4-compatible form of a loopback or private one (the switches
    open an address itself and its IPv4-mapped spelling, never a relayed form).
    """

    allow_hosts: Sequence[str] = ()
    allow_networks: Sequence[str | IPNetwork] = ()
    # On-premise use: private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) and 100.64/10.
    allow_private: bool = False
    # Tests and local use.
    allow_loopback: bool = False
    # "type/*" allows a whole type; the default is what the image codec decodes.
    allowed_content_types: Sequence[str] = tuple(sorted(IMAGE_MEDIA_TYPES))
    resolver: Resolver = system_resolver
    # None: httpcore's default (certifi's CAs); set one for a private CA.
    ssl_context: ssl.SSLContext | None = None
    user_agent: str = "batchserve-url-fetch/1"
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts = tuple(normalise_host(h) for h in self.allow_hosts)
        networks = []
        for entry in self.allow_networks:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(f"allow_networks: {entry!r} is not a network: {exc}") from exc
        types = tuple(t.strip().lower() for t in self.allowed_content_types)
        if not types:
            raise ValueError("allowed_content_types is empty: nothing could be fetched")
        object.__setattr__(self, "allow_hosts", hosts)
        object.__setattr__(self, "allow_networks", tuple(str(n) for n in networks))
        object.__setattr__(self, "networks", tuple(networks))
        object.__setattr__(self, "allowed_content_types", types)

    @property
    def has_allowlist(self) -> bool:
        """Whether the operator restricted fetches to listed hosts or networks."""
        return bool(self.allow_hosts or self.networks)

    def lists_host(self, host: str) -> bool:
        """Whether `host` (normalised) is on the allowlist by name."""
        for entry in self.allow_hosts:
            if entry.startswith("*.") and host.endswith(entry[1:]):
                return True
            if host == entry:
                return True
        return False

    def lists_network_of(self, address: IPAddress) -> bool:
        """Whether `address` lies in one of the allowlist's networks."""
        return any(
            address.version == network.version and address in network for network in self.networks
        )


def is_literal_of(host: str, address: IPAddress) -> bool:
    """Whether `host` is `address` written as a literal (so a message need not repeat it)."""
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


def _address_problem(address: IPAddress, policy: FetchPolicy, host: str | None) -> str | None:
    """The reason `address` may not be fetched under `policy`, or None when it may."""
    category, block = deciding_block(address)
    if category is None:
        return None
    outer = special_block(address)
    tunnelled = outer is not None and outer.embeds not in (None, IPV4_MAPPED)
    if tunnelled and category in _SWITCHED:
        # Only the address itself (or its IPv4-mapped spelling) stays on this machine or
        # network; a 6to4, NAT64, Teredo or IPv4-compatible form is sent to a relay.
        assert outer is not None
        why = (
            f"the {outer.embeds} form is never fetched, even with {_SWITCHED[category]}: "
            "its packets would go through a relay or translator, not straight to that address"
        )
    elif category == "loopback":
        if policy.allow_loopback:
            return None
        why = "the operator has not allowed loopback (allow_loopback)"
    elif category in ("private", "shared"):
        if policy.allow_private:
            return None
        why = "the operator has not allowed private addresses (allow_private)"
    else:
        why = _NEVER
    what = CATEGORY_TEXT[category]
    if category == "reserved" and block is not None:
        # Name the registry's block: "reserved" alone would not say which rule refused it.
        where = f"{block.network}: " if block.network.prefixlen else ""
        what = f"{what} ({where}{block.name}, {block.rfc})"
    described = describe(address)
    if host is not None and not is_literal_of(host, address):
        return f"{host} resolves to {described}, {what}; {why}"
    return f"{described} is {what}; {why}"


def check_address(ip: str | IPAddress, policy: FetchPolicy, host: str | None = None) -> IPAddress:
    """Return `ip` parsed when `policy` lets it be fetched; raise UrlRefused saying why not.

    `host` is the name that resolved to `ip`, only for the message. This checks
    the address ranges and switches; the allowlist is checked per URL, since a
    listed host name covers all its addresses.
    """
    try:
        address = parse_address(ip)
    except ValueError as exc:
        raise UrlRefused(f"refused: {ip!r} is not an IP address") from exc
    problem = _address_problem(address, policy, host)
    if problem is not None:
        raise UrlRefused(f"refused: {problem}")
    return address
