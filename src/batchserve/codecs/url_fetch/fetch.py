"""One fetch: every hop checked (scheme, host, allowlist, addresses), then one GET
over a pinned connection; redirects followed and checked again; the reply's
status, content type and size checked before and while its body is read."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpcore
import httpx

from batchserve.codecs.url_fetch.policy import (
    FetchLimits,
    FetchPolicy,
    check_address,
    is_literal_of,
)
from batchserve.codecs.url_fetch.special_addresses import IPAddress
from batchserve.codecs.url_fetch.transport import (
    PinnedBackend,
    normalise_host,
    resolve,
    time_left,
)
from batchserve.errors import (
    FetchFailed,
    FetchTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    UrlRefused,
)

_SCHEMES = {"http": 80, "https": 443}
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchedImage:
    """The body of a successful fetch, and where it really came from."""

    content: bytes
    content_type: str  # the media type, lower-case, without parameters
    url: str  # the final URL, after redirects
    address: str  # the IP address the body was read from
    redirects: int


@dataclass(frozen=True)
class _Target:
    """A URL that passed every check, with the addresses it may be fetched from."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host, lower-case, as httpcore will name it
    port: int
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True)
class _Hop:
    """One request of a fetch: the checked URL, and the bounds and rules it runs under."""

    target: _Target
    limits: FetchLimits
    policy: FetchPolicy
    deadline: float
    redirects: int  # followed before this hop


@dataclass(frozen=True)
class _Redirect:
    location: str


def _parse_url(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError, UnicodeError) as exc:  # "\ud800": UnicodeEncodeError
        raise UrlRefused(f"refused: {url!r} is not a valid URL: {exc}") from exc


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
    host = normalise_host(url.raw_host.decode("ascii"))
    if not host:
        raise UrlRefused(f"refused: {url} has no host")
    try:
        # What getaddrinfo would do first: a label over 63 bytes or an empty one fails
        # here as the client's error, not as a UnicodeError inside the lookup.
        host.encode("idna")
    except UnicodeError as exc:
        raise UrlRefused(f"refused: {host!r} is not a valid host name ({exc})") from None
    port = url.port if url.port is not None else _SCHEMES[scheme]
    if not 0 < port < 65536:
        raise UrlRefused(f"refused: {url} has port {port}, outside 1-65535")

    try:
        addresses: tuple[IPAddress, ...] = (ipaddress.ip_address(host),)
    except ValueError:
        addresses = resolve(policy.resolver, host, port, deadline)

    if policy.has_allowlist and not policy.lists_host(host):
        outside = [a for a in addresses if not policy.lists_network_of(a)]
        if outside:
            listed = ", ".join([*policy.allow_hosts, *policy.allow_networks])
            resolves = "" if is_literal_of(host, outside[0]) else f" (it resolves to {outside[0]})"
            raise UrlRefused(
                f"refused: {host}{resolves} is not on the operator's allowlist ({listed})"
            )
    for address in addresses:
        check_address(address, policy, host)
    return _Target(url=url, host=host, port=port, addresses=addresses)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _media_type_allowed(media_type: str, allowed: Sequence[str]) -> bool:
    major = media_type.split("/", 1)[0]
    return any(a == media_type or a == f"{major}/*" for a in allowed)


def _exchange(
    pool: httpcore.ConnectionPool, hop: _Hop, address: IPAddress
) -> FetchedImage | _Redirect:
    """One GET over `pool`; the body is read only when it is an allowed image within the limits."""
    url, limits, policy, deadline = hop.target.url, hop.limits, hop.policy, hop.deadline
    headers = [
        (b"Host", url.netloc),
        (b"User-Agent", policy.user_agent.encode("ascii")),
        (b"Accept", ", ".join(policy.allowed_content_types).encode("ascii")),
        # Compressed bodies would make the size bound count the wrong bytes.
        (b"Accept-Encoding", b"identity"),
        (b"Connection", b"close"),
    ]
    left = time_left(deadline, None, httpcore.PoolTimeout)
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
            time_left(deadline, None, httpcore.ReadTimeout)
    return FetchedImage(
        content=bytes(body),
        content_type=media_type,
        url=str(url),
        address=str(address),
        redirects=hop.redirects,
    )


def _fetch_hop(hop: _Hop) -> FetchedImage | _Redirect:
    """Fetch one checked URL, trying its checked addresses in order until one connects."""
    target, limits, deadline = hop.target, hop.limits, hop.deadline
    url = target.url
    failures: list[str] = []
    only_timeouts = True
    for address in target.addresses:
        backend = PinnedBackend(target.host, address, deadline)
        pool = httpcore.ConnectionPool(
            ssl_context=hop.policy.ssl_context, network_backend=backend, max_connections=1
        )
        try:
            with pool:
                return _exchange(pool, hop, address)
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
        outcome = _fetch_hop(_Hop(target, limits, policy, deadline, redirects))
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
