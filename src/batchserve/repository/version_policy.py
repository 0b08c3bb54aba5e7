"""Which versions of a model are served, as Triton's version_policy decides."""

from __future__ import annotations

from batchserve.config import VersionPolicy


def versions_to_serve(policy: VersionPolicy, available: list[int]) -> list[int]:
    available = sorted(available)
    if policy.all:
        return available
    if policy.specific is not None:
        return [v for v in available if v in set(policy.specific)]
    return available[-(policy.latest or 1) :]
