"""The memory budget: which models to unload to make room for another.

The budget is kept in the same currency as `LoadedModel.resident_bytes`, an
estimate known *before* a load (see `loader.estimate_resident_bytes`): the
decision to unload others, or to refuse a model that can never fit, has to be
taken before its memory is spent.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from batchserve.units import format_size


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
