"""Fetch an image by URL without opening a server-side request forgery hole.

A client that may name any URL can make the server reach what the client
cannot: the cloud metadata service at 169.254.169.254, an admin port on
localhost, a database on the private network. So every hop is checked the
same way before a byte is sent:

- only http and https;
- the host is resolved once, and refused if ANY of its addresses is
  loopback, private, link-local, multicast, reserved, unspecified, in the
  shared space 100.64.0.0/10, or an IPv6 form that embeds such an IPv4
  address (IPv4-mapped, IPv4-compatible, 6to4, NAT64);
- the connection then goes to the checked address itself: an httpcore
  network backend pinned to it is the only way this module opens a socket,
  so no second lookup can happen and DNS rebinding cannot switch the target.
  The URL keeps its real name, so the Host header, SNI and the TLS
  certificate check all use that name.

Redirects (at most `FetchLimits.max_redirects`) are each checked again by the
same function. Time is bounded by a connect timeout and by one deadline over
the whole fetch (lookups, redirects, every socket read); size is bounded while
streaming, whatever Content-Length says.

`fetch_image` blocks; the server calls it from a worker thread.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpcore
import httpx

from batchserve.codecs.images import IMAGE_MEDIA_TYPES
from batchserve.errors import (
    FetchFailed,
    FetchTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    UrlRefused,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver = Callable[[str, int], Sequence[str]]
"""Maps (host name, port) to IP address strings; raises OSError when the name does not resolve."""

_SCHEMES = {"http": 80, "https": 443}
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_PRIVATE_V4 = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
_UNIQUE_LOCAL_V6 = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")

_CATEGORY_TEXT = {
    "unspecified": "an unspecified address (it reaches this machine)",
    "loopback": "a loopback address",
    "private": "a private address",
    "shared": "in the shared address space 100.64.0.0/10 (carrier-grade NAT)",
    "link-local": "a link-local address (where cloud metadata services such as "
    "169.254.169.254 live)",
    "multicast": "a multicast address",
    "reserved": "a reserved or special-purpose address",
}
_NEVER = "such addresses are never fetched"


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system (getaddrinfo): every TCP address, in its order."""
    addresses: list[str] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    return addresses


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
    reserved and unspecified addresses are never fetched.
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
        hosts = tuple(_normalise_host(h) for h in self.allow_hosts)
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


@dataclass(frozen=True)
class FetchedImage:
    """The body of a successful fetch, and where it really came from."""

    content: bytes
    content_type: str  # the media type, lower-case, without parameters
    url: str  # the final URL, after redirects
    address: str  # the IP address the body was read from
    redirects: int


# --- the address check -------------------------------------------------------


def classify_address(ip: str | IPAddress) -> str | None:
    """Why an address must not be fetched ("loopback", "private", "link-local"...), or None.

    None means a public, globally routed address. An IPv6 address that embeds
    an IPv4 one (IPv4-mapped, IPv4-compatible, 6to4, NAT64) gets the category
    of the embedded address, because that is where the packets end up.
    """
    address = ip if isinstance(ip, IPAddress) else ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv4Address):
        return _classify_ipv4(address)
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        form, inner = embedded
        category = _classify_ipv4(inner)
        # ::a.b.c.d is deprecated (RFC 4291) and has no honest use, even with a public inside.
        if category is None and form == "IPv4-compatible":
            return "reserved"
        return category
    return _classify_ipv6(address)


def _classify_ipv4(address: ipaddress.IPv4Address) -> str | None:
    # 0.0.0.0/8 first: on Linux a connect to 0.x.y.z reaches this machine.
    if address in _THIS_NETWORK:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _SHARED_ADDRESS_SPACE:
        return "shared"
    if any(address in network for network in _PRIVATE_V4):
        return "private"
    # 240/4, broadcast, documentation, benchmarking, 192.0.0/24...
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def _classify_ipv6(address: ipaddress.IPv6Address) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_multicast:
        return "multicast"
    if address.is_link_local:
        return "link-local"
    if address in _UNIQUE_LOCAL_V6 or address.is_site_local:
        return "private"
    # Teredo, documentation, discard-only, ORCHID, local-use NAT64, unassigned space...
    if address in _NAT64_LOCAL or address.is_reserved or not address.is_global:
        return "reserved"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 one carries, with the name of the form, if it carries one."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return "NAT64", low32
    # ::/96 minus :: and ::1, which are IPv6's own unspecified and loopback addresses.
    if int(address) >> 32 == 0 and int(address) > 1:
        return "IPv4-compatible", low32
    return None


def _describe(address: IPAddress) -> str:
    """'::ffff:127.0.0.1 (the IPv4-mapped form of 127.0.0.1)', or just the address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            form, inner = embedded
            # Python < 3.13 prints ::ffff:127.0.0.1 as ::ffff:7f00:1; show the usual spelling.
            shown = f"::ffff:{inner}" if form == "IPv4-mapped" else str(address)
            return f"{shown} (the {form} form of {inner})"
    return str(address)


def _address_problem(address: IPAddress, policy: FetchPolicy, host: str | None) -> str | None:
    """The reason `address` may not be fetched under `policy`, or None when it may."""
    category = classify_address(address)
    if category is None:
        return None
    if category == "loopback":
        if policy.allow_loopback:
            return None
        why = "the operator has not allowed loopback (allow_loopback)"
    elif category in ("private", "shared"):
        if policy.allow_private:
            return None
        why = "the operator has not allowed private addresses (allow_private)"
    else:
        why = _NEVER
    what = _CATEGORY_TEXT[category]
    described = _describe(address)
    if host is not None and not _is_literal_of(host, address):
        return f"{host} resolves to {described}, {what}; {why}"
    return f"{described} is {what}; {why}"


def _is_literal_of(host: str, address: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


def check_address(ip: str | IPAddress, policy: FetchPolicy, host: str | None = None) -> IPAddress:
    """Return `ip` parsed when `policy` lets it be fetched; raise UrlRefused saying why not.

    `host` is the name that resolved to `ip`, only for the message. This checks
    the address ranges and switches; the allowlist is checked per URL, since a
    listed host name covers all its addresses.
    """
    try:
        address = ip if isinstance(ip, IPAddress) else ipaddress.ip_address(ip)
    except ValueError as exc:
        raise UrlRefused(f"refused: {ip!r} is not an IP address") from exc
    problem = _address_problem(address, policy, host)
    if problem is not None:
        raise UrlRefused(f"refused: {problem}")
    return address


# --- one hop: parse, check, connect ------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A URL that passed every check, with the addresses it may be fetched from."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host, lower-case, as httpcore will name it
    port: int
    addresses: tuple[IPAddress, ...]


def _normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _parse_url(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UrlRefused(f"refused: {url!r} is not a valid URL: {exc}") from exc


def _host_listed(host: str, policy: FetchPolicy) -> bool:
    for entry in policy.allow_hosts:
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
        if host == entry:
            return True
    return False


def _in_listed_network(address: IPAddress, policy: FetchPolicy) -> bool:
    return any(
        address.version == network.version and address in network for network in policy.networks
    )


def _check_url(url: httpx.URL, policy: FetchPolicy, deadline: float) -> _Target:
    """Every check one hop gets, the first and each redirect alike; raises UrlRefused."""
    scheme = url.scheme
    if scheme not in _SCHEMES:
        shown = f"the scheme {scheme!r}" if scheme else "no scheme"
        raise UrlRefused(f"refused: {url} has {shown}; only http and https URLs are fetched")
    if url.userinfo:
        raise UrlRefused(
            f"refused: the URL for {url.host} carries a user name or password (user:pass@); "
            "such URLs are not fetched"
        )
    host = _normalise_host(url.raw_host.decode("ascii"))
    if not host:
        raise UrlRefused(f"refused: {url} has no host")
    port = url.port if url.port is not None else _SCHEMES[scheme]
    if not 0 < port < 65536:
        raise UrlRefused(f"refused: {url} has port {port}, outside 1-65535")

    try:
        addresses: tuple[IPAddress, ...] = (ipaddress.ip_address(host),)
    except ValueError:
        addresses = _resolve(host, port, policy, deadline)

    if policy.has_allowlist and not _host_listed(host, policy):
        outside = [a for a in addresses if not _in_listed_network(a, policy)]
        if outside:
            listed = ", ".join([*policy.allow_hosts, *policy.allow_networks])
            resolves = "" if _is_literal_of(host, outside[0]) else f" (it resolves to {outside[0]})"
            raise UrlRefused(
                f"refused: {host}{resolves} is not on the operator's allowlist ({listed})"
            )
    for address in addresses:
        check_address(address, policy, host)
    return _Target(url=url, host=host, port=port, addresses=addresses)


# Lookups run on their own threads so that the deadline bounds them too:
# getaddrinfo itself has no timeout, and a slow DNS server can hold it for many seconds.
_LOOKUPS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="url-fetch-dns")


def _resolve(host: str, port: int, policy: FetchPolicy, deadline: float) -> tuple[IPAddress, ...]:
    """Resolve `host` once, within the deadline."""
    lookup = _LOOKUPS.submit(policy.resolver, host, port)
    try:
        found = lookup.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError as exc:
        lookup.cancel()
        raise FetchTimeout(
            f"resolving {host} did not finish within the fetch's time limit"
        ) from exc
    except OSError as exc:
        raise FetchFailed(f"could not resolve {host}: {exc}") from exc
    try:
        addresses = tuple(ipaddress.ip_address(a) for a in found)
    except ValueError as exc:
        raise FetchFailed(f"resolving {host} gave an invalid address: {exc}") from exc
    if not addresses:
        raise FetchFailed(f"{host} resolves to no address")
    return addresses


def _time_left(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    """The shorter of `timeout` and the time until the deadline; raises `error` past it."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the fetch's total time limit passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the deadline.

    httpcore's timeouts are per operation, so a server trickling a byte every
    0.2 s would never trip them; clipping each operation to the time left
    cuts it at the deadline instead.
    """

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        left = _time_left(self._deadline, timeout, httpcore.ReadTimeout)
        return self._inner.read(max_bytes, left)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        left = _time_left(self._deadline, timeout, httpcore.WriteTimeout)
        self._inner.write(buffer, left)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """The only way this module opens a socket: to the one address that was checked.

    httpcore asks to connect to the URL's host name; this backend connects to
    the checked IP address instead and never resolves anything, so a DNS
    answer that changes between check and connect (rebinding) changes nothing.
    """

    def __init__(self, host: str, address: IPAddress, deadline: float) -> None:
        self._host = host
        self._address = address
        self._deadline = deadline
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        if _normalise_host(host) != self._host:
            raise RuntimeError(f"url_fetch: asked to connect to {host!r}, checked {self._host!r}")
        left = _time_left(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = self._sockets.connect_tcp(
            str(self._address), port, left, local_address, socket_options
        )
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise RuntimeError("url_fetch never connects to unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class _Redirect:
    location: str


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _media_type_allowed(media_type: str, allowed: Sequence[str]) -> bool:
    major = media_type.split("/", 1)[0]
    return any(a == media_type or a == f"{major}/*" for a in allowed)


def _exchange(
    pool: httpcore.ConnectionPool,
    target: _Target,
    address: IPAddress,
    limits: FetchLimits,
    policy: FetchPolicy,
    deadline: float,
    redirects: int,
) -> FetchedImage | _Redirect:
    """One GET over `pool`; the body is read only when it is an allowed image within the limits."""
    url = target.url
    headers = [
        (b"Host", url.netloc),
        (b"User-Agent", policy.user_agent.encode("ascii")),
        (b"Accept", ", ".join(policy.allowed_content_types).encode("ascii")),
        # Compressed bodies would make the size bound count the wrong bytes.
        (b"Accept-Encoding", b"identity"),
        (b"Connection", b"close"),
    ]
    left = _time_left(deadline, None, httpcore.PoolTimeout)
    timeouts = {
        "connect": min(limits.connect_timeout_s, left),
        "read": left,
        "write": left,
        "pool": left,
    }
    request_url = httpcore.URL(
        scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
    )
    with pool.stream(
        "GET", request_url, headers=headers, extensions={"timeout": timeouts}
    ) as response:
        if response.status in _REDIRECT_STATUSES:
            location = _header(response.headers, b"location")
            if not location:
                raise FetchFailed(f"{url} answered HTTP {response.status} without a Location")
            return _Redirect(location)
        if not 200 <= response.status < 300:
            raise FetchFailed(f"{url} answered HTTP {response.status}; expected 200")

        encoding = _header(response.headers, b"content-encoding")
        if encoding and encoding.lower() != "identity":
            raise FetchFailed(
                f"{url} sent Content-Encoding {encoding} although identity was asked for"
            )
        content_type = _header(response.headers, b"content-type")
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if not _media_type_allowed(media_type, policy.allowed_content_types):
            shown = f"Content-Type {content_type}" if content_type else "no Content-Type"
            raise UnsupportedMediaType(
                f"refused: {url} answered with {shown}, not an image type that is fetched "
                f"({', '.join(policy.allowed_content_types)})"
            )
        declared = _header(response.headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
            raise PayloadTooLarge(
                f"{url} declares {declared} bytes (Content-Length), over the limit of "
                f"{limits.max_bytes} bytes"
            )

        body = bytearray()
        for chunk in response.iter_stream():
            body += chunk
            if len(body) > limits.max_bytes:
                raise PayloadTooLarge(
                    f"{url} sent more than the limit of {limits.max_bytes} bytes; "
                    "stopped reading there"
                )
            _time_left(deadline, None, httpcore.ReadTimeout)
    return FetchedImage(
        content=bytes(body),
        content_type=media_type,
        url=str(url),
        address=str(address),
        redirects=redirects,
    )


def _fetch_hop(
    target: _Target,
    limits: FetchLimits,
    policy: FetchPolicy,
    deadline: float,
    redirects: int,
) -> FetchedImage | _Redirect:
    """Fetch one checked URL, trying its checked addresses in order until one connects."""
    url = target.url
    failures: list[str] = []
    only_timeouts = True
    for address in target.addresses:
        backend = _PinnedBackend(target.host, address, deadline)
        pool = httpcore.ConnectionPool(
            ssl_context=policy.ssl_context, network_backend=backend, max_connections=1
        )
        try:
            with pool:
                return _exchange(pool, target, address, limits, policy, deadline, redirects)
        except httpcore.TimeoutException as exc:
            if time.monotonic() >= deadline:
                raise FetchTimeout(
                    f"fetching {url} took longer than the total limit of "
                    f"{limits.total_timeout_s:g} s"
                ) from exc
            if isinstance(exc, httpcore.ConnectTimeout):
                failures.append(f"{address}: no connection within {limits.connect_timeout_s:g} s")
                continue
            raise FetchTimeout(f"fetching {url} from {address} timed out: {exc}") from exc
        except httpcore.ConnectError as exc:
            only_timeouts = False
            failures.append(f"{address}: {str(exc) or type(exc).__name__}")
        except httpcore.NetworkError as exc:
            raise FetchFailed(f"fetching {url} from {address} failed: {exc}") from exc
        except httpcore.ProtocolError as exc:
            raise FetchFailed(f"{url} sent a broken HTTP reply: {exc}") from exc
    error = FetchTimeout if only_timeouts else FetchFailed
    raise error(f"could not connect to {target.host}:{target.port} ({'; '.join(failures)})")


def fetch_image(
    url: str,
    limits: FetchLimits | None = None,
    policy: FetchPolicy | None = None,
) -> FetchedImage:
    """Fetch the image at `url`, or raise a typed error that says exactly what was wrong.

    Raises UrlRefused (a refused scheme, host, address or redirect, or too many
    redirects), PayloadTooLarge, UnsupportedMediaType (not an allowed image
    type), FetchTimeout, or FetchFailed (unreachable, an error status, a broken
    reply). Blocks: call it from a worker thread, never on the event loop.
    """
    limits = limits or FetchLimits()
    policy = policy or FetchPolicy()
    deadline = time.monotonic() + limits.total_timeout_s
    target = _check_url(_parse_url(url), policy, deadline)
    for redirects in range(limits.max_redirects + 1):
        outcome = _fetch_hop(target, limits, policy, deadline, redirects)
        if isinstance(outcome, FetchedImage):
            return outcome
        try:
            following = target.url.join(outcome.location)
        except httpx.InvalidURL as exc:
            raise UrlRefused(
                f"refused: {target.url} redirects to an invalid URL {outcome.location!r}: {exc}"
            ) from exc
        if redirects == limits.max_redirects:
            break
        try:
            # The same check as the first hop, lookup included: a redirect is a new URL.
            target = _check_url(following, policy, deadline)
        except UrlRefused as exc:
            reason = str(exc).removeprefix("refused: ")
            raise UrlRefused(
                f"refused redirect {redirects + 1} from {target.url} to {following}: {reason}"
            ) from exc
    raise UrlRefused(
        f"refused: {url} redirects more than {limits.max_redirects} times (the redirect limit "
        f"is {limits.max_redirects}); the next one was to {following}"
    )
