"""Command-line quantities: durations ("60s", "500ms"), rates ("80/s"), lists ("1,2,4").

Kept apart from the command so that compare scripts and tests parse them the same way.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*(ms|s|m|min|h))?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in "60s", "2s", "500ms", "1.5m" or a bare number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (try 60s, 500ms, 2m)")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be more than zero, not {text!r}")
    return seconds


def parse_rate(text: str) -> float:
    """Requests per second in "80/s", "4800/m", "0.5/s" or a bare number per second."""
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"not a rate: {text!r} (try 80/s)")
    rate = float(match.group(1)) / _DURATION_UNITS[match.group(2)]
    if rate <= 0:
        raise ValueError(f"a rate must be more than zero, not {text!r}")
    return rate


def parse_concurrency(text: str) -> list[int]:
    """A comma list of client counts, e.g. "1,2,4,8"; each at least 1, kept in the given order."""
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"not a list of whole numbers: {text!r} (try 1,8,64)") from None
    if not levels or any(n < 1 for n in levels):
        raise ValueError(f"concurrency levels must be at least 1: {text!r}")
    return levels


def parse_rates(text: str) -> list[float]:
    """A comma list of rates, e.g. "20/s,40/s,80/s"."""
    rates = [parse_rate(part) for part in text.split(",") if part.strip()]
    if not rates:
        raise ValueError(f"no rate in {text!r}")
    return rates


def format_rate(rate: float) -> str:
    """The inverse of `parse_rate` for labels: 80.0 -> "80/s"."""
    return f"{rate:g}/s"
