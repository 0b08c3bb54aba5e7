"""The memory budget: which models to unload to make room for another.

The budget is kept in the same currency as `LoadedModel.resident_bytes`, an
estimate known *before* a load (see `loader.predict_resident_bytes`): the
decision to unload others, or to refuse a model that can never fit, has to be
taken before its memory is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from batchserve.repository.drainer import Drainer
from batchserve.repository.loaded_model import LoadedModel
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


class MemoryBudget:
    """`--memory-budget`: a limit on the bytes of the loaded versions, and when each was
    last used, so that the least recently used are the ones unloaded to make room."""

    def __init__(self, limit_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_bytes = limit_bytes
        self._clock = clock
        self._last_used: dict[tuple[str, int], float] = {}

    def used(self, name: str, version: int) -> None:
        """A request was given this version (or it was just loaded)."""
        self._last_used[(name, version)] = self._clock()

    def make_room(
        self,
        need: int,
        *,
        keep: str,
        served: Callable[[], Sequence[LoadedModel]],
        drainer: Drainer,
        unload: Callable[[str, int], None],
        count_draining: bool = True,
    ) -> None:
        """Unload (`unload(name, version)`) the least recently used versions of models
        other than `keep` until `need` more bytes fit; raises NoRoom when they cannot.

        Versions still draining after a swap hold memory until they finish: when only
        they are in the way, this waits for them once. `count_draining=False` leaves
        them out, for the check after a swap, where unloading a third model for memory
        that is about to be freed would be wrong.
        """

        def victims() -> list[Hashable]:
            draining = drainer.models() if count_draining else []
            return plan_eviction(self.limit_bytes, need, self.resident(served(), draining, keep))

        try:
            chosen = victims()
        except NoRoom:
            if not drainer.wait():
                raise
            chosen = victims()
        for name, version in chosen:  # type: ignore[misc]
            unload(name, version)

    def resident(
        self, served: Sequence[LoadedModel], draining: Sequence[LoadedModel], keep: str | None
    ) -> list[Resident]:
        """What holds memory: the served versions (evictable unless `keep`'s), and the
        draining ones (never evictable: they are on their way out)."""
        resident = [
            Resident(
                (m.name, m.version),
                m.resident_bytes,
                self._last_used.get((m.name, m.version), 0.0),
                evictable=m.name != keep,
            )
            for m in served
        ]
        resident += [Resident(id(m), m.resident_bytes, 0.0, evictable=False) for m in draining]
        return resident
