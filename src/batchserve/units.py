"""Quantities as operators write them: sizes ("400MB", "1.5GiB"), durations ("60s",
"500ms"), rates ("80/s") and lists of client counts ("1,8,64").

One grammar each, for flags, environment variables and model.yaml alike. Parse errors
are `ValueError`s whose message says what was expected; callers name the flag or field.
"""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "G": 1000**3,
    "GB": 1000**3,
    "T": 1000**4,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*(ms|s|m|min|h))?\s*$")


def parse_size(text: str | int) -> int:
    """Bytes in '400MB' (400_000_000), '1.5GiB' (1_610_612_736), '2G' or '2048'.

    KB, MB, GB are powers of 1000 and KiB, MiB, GiB powers of 1024, as their names
    say (and as Kubernetes reads them); a bare number is bytes.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        match = _SIZE.match(str(text))
        unit = match.group(2).upper() if match else None
        if match is None or unit not in _SIZE_UNITS:
            raise ValueError(
                f"not a size: {text!r} (expected a number with an optional unit: B, KB, MB, "
                "GB, TB, KiB, MiB, GiB, TiB; such as 400MB or 1.5GiB)"
            )
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError(f"a size must be more than 0 bytes, not {text!r}")
    return size


def format_size(size: int) -> str:
    """400_000_000 -> '400.0 MB' (powers of 1000, as `parse_size` reads MB)."""
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


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
