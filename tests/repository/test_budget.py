from __future__ import annotations

import pytest

from batchserve.errors import ConfigError
from batchserve.repository.budget import NoRoom, Resident, parse_size, plan_eviction


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("400MB", 400_000_000),
        ("2GB", 2_000_000_000),
        ("1.5GiB", 1_610_612_736),
        ("512MiB", 512 * 1024**2),
        ("2048", 2048),
        ("10 kb", 10_000),
        ("0.5G", 500_000_000),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "12 parsecs", "-1GB", "0", "1..2MB"])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(ConfigError):
        parse_size(text)


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
