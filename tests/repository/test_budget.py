from __future__ import annotations

import pytest

from batchserve.repository.budget import NoRoom, Resident, plan_eviction


def _resident(*entries: tuple[str, int, float]) -> list[Resident]:
    return [Resident(key, size, used) for key, size, used in entries]


def test_evicts_least_recently_used_first_and_only_as_many_as_needed():
    resident = _resident(("a", 40, 3.0), ("b", 40, 1.0), ("c", 40, 2.0))
    assert plan_eviction(150, 30, resident) == []
    assert plan_eviction(150, 50, resident) == ["b"]
    assert plan_eviction(150, 100, resident) == ["b", "c"]


def test_no_room_when_too_big_or_when_the_rest_cannot_go():
    with pytest.raises(NoRoom, match="more than the whole memory budget") as too_big:
        plan_eviction(100, 101, [])
    assert too_big.value.permanent
    pinned = [Resident("a", 80, 0.0, evictable=False)]
    with pytest.raises(NoRoom, match="cannot be unloaded") as busy:
        plan_eviction(100, 50, pinned)
    assert not busy.value.permanent
