"""Fetch an image by URL without opening a server-side request forgery hole.

A client that may name any URL can make the server reach what the client
cannot: the cloud metadata service at 169.254.169.254, an admin port on
localhost, a database on the private network. So every hop is checked the
same way before a byte is sent:

- only http and https;
- the host is resolved once, and refused if ANY of its addresses is
  loopback, private, link-local, multicast, reserved, unspecified, in the
  shared space 100.64.0.0/10, in any other block IANA's special-purpose
  registries mark as not globally reachable, or an IPv6 form that embeds such
  an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo);
- the connection then goes to the checked address itself: an httpcore
  network backend pinned to it is the only way this package opens a socket,
  so no second lookup can happen and DNS rebinding cannot switch the target.
  The URL keeps its real name, so the Host header, SNI and the TLS
  certificate check all use that name.

Redirects (at most `FetchLimits.max_redirects`) are each checked again by the
same function. Time is bounded by a connect timeout and by one deadline over
the whole fetch (lookups, redirects, every socket read); size is bounded while
streaming, whatever Content-Length says.

The modules: `special_addresses` (the IANA table), `addresses` (classifying an
address), `policy` (what the operator allows, the limits, the address check),
`transport` (the lookup, the pinned backend, the deadline stream), `fetch`
(hops, redirects, the reply's checks, `fetch_image`). `fetch_image` blocks; the
server calls it from a worker thread.
"""

from batchserve.codecs.url_fetch.addresses import classify_address
from batchserve.codecs.url_fetch.fetch import FetchedImage, fetch_image
from batchserve.codecs.url_fetch.policy import FetchLimits, FetchPolicy, check_address
from batchserve.codecs.url_fetch.transport import Resolver, system_resolver

__all__ = [
    "FetchLimits",
    "FetchPolicy",
    "FetchedImage",
    "Resolver",
    "check_address",
    "classify_address",
    "fetch_image",
    "system_resolver",
]
