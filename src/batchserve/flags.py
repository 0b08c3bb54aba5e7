"""Parsers for command-line flag values, for every subcommand: each refuses a bad value
with one line that says what was expected (argparse prints it after the flag's name),
instead of letting the value fail later with a traceback."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from typing import Any

from batchserve.units import parse_duration, parse_size


def checked(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """A `units` parser (which raises ValueError) as an argparse type, keeping its message."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def port(text: str) -> int:
    value = positive_int(text, minimum=0)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 0-65535 (0 picks a free one)")
    return value


def positive_int(text: str, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least {minimum}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number above 0")
    return value


def seconds(*, allow_zero: bool = False) -> Callable[[str], float]:
    """A duration ("30", "30s", "500ms", "2m") in seconds; 0 only where it means "none"."""

    def parse(text: str) -> float:
        if allow_zero and text.strip() in ("0", "0s", "0.0"):
            return 0.0
        return parse_duration(text)

    return checked(parse, "seconds")


size = checked(parse_size, "size")


def token(text: str) -> str:
    """A bearer token: refused when empty, which would otherwise switch auth off."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "is empty; give a token, or leave it out to serve without authentication"
        )
    if text != text.strip() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError("a token cannot hold spaces")
    return text


def host_name(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name")
    return text.strip()


def network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a network (e.g. 203.0.113.0/24 or 2001:db8::/32)"
        ) from None
