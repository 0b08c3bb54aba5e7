"""The memory budget: sizes as operators write them, and which models to unload for room.

The budget is kept in the same currency as `LoadedModel.resident_bytes`, an
estimate known *before* a load (see `loader.estimate_resident_bytes`): the
decision to unload others, or to refuse a model that can never fit, has to be
taken before its memory is spent.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from batchserve.errors import ConfigError

_UNITS = {
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


def parse_size(text: str | int) -> int:
    """'400MB' -> 400_000_000, '1.5GiB' -> 1_610_612_736, '2048' -> 2048 bytes.

    MB and GB are powers of 1000, MiB and GiB powers of 1024, as their names say.
    """
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ConfigError(
            f"size {text!r}: expected a number with an optional unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), such as 400MB or 1.5GiB"
        )
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ConfigError(f"size {text!r} must be more than 0 bytes")
    return size


def format_size(size: int) -> str:
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class Resident:
    """One loaded model version as the budget sees it."""

    key: Hashable
    bytes: int
    last_used: float
    evictable: bool = True


class NoRoom(Exception):
    """The model does not fit even after unloading every model that may be unloaded.

    `permanent`: it is larger than the whole budget, so no unloading will ever help.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def plan_eviction(limit: int, need: int, resident: Sequence[Resident]) -> list[Hashable]:
    """The least recently used models to unload so that `need` more bytes fit in `limit`.

    Raises `NoRoom` (with the reason) when unloading every evictable model is not enough.
    """
    used = sum(r.bytes for r in resident)
    if used + need <= limit:
        return []
    if need > limit:
        raise NoRoom(
            f"needs about {format_size(need)}, more than the whole memory budget "
            f"of {format_size(limit)}",
            permanent=True,
        )
    victims: list[Hashable] = []
    for candidate in sorted((r for r in resident if r.evictable), key=lambda r: r.last_used):
        victims.append(candidate.key)
        used -= candidate.bytes
        if used + need <= limit:
            return victims
    raise NoRoom(
        f"needs about {format_size(need)}; {format_size(used)} of the "
        f"{format_size(limit)} budget is held by models that cannot be unloaded now"
    )
