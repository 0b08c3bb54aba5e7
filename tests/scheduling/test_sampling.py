"""Choosing tokens: greedy, seeded draws that stay what they were, and the top-p nucleus."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from batchserve.errors import InvalidInput
from batchserve.scheduling.sampling import Sampler, SamplingParams

LOGITS = np.linspace(-2, 2, 50).astype(np.float32)


def draws(params: SamplingParams, logits: np.ndarray = LOGITS, count: int = 12) -> list[int]:
    sampler = Sampler(params, eos_token=None)
    return [sampler(logits) for _ in range(count)]


def test_seeded_draws_are_the_ones_recorded_before_top_p_existed() -> None:
    # Recorded from the sampler before nucleus sampling was added: top_p=1 changes nothing.
    assert draws(SamplingParams(10, temperature=0.8, seed=7)) == [
        45, 48, 47, 35, 38, 48, 6, 48, 47, 42, 38, 37,
    ]  # fmt: skip
    assert draws(SamplingParams(10, temperature=1.3, top_k=5, seed=11, top_p=1.0)) == [
        45, 47, 48, 45, 45, 49, 45, 45, 49, 48, 47, 47,
    ]  # fmt: skip


def test_greedy_ignores_top_p() -> None:
    assert set(draws(SamplingParams(10, top_p=0.1))) == {49}


def test_top_p_keeps_only_the_nucleus() -> None:
    # Probabilities 0.5, 0.3, 0.15, 0.05: top_p=0.75 keeps exactly the first two.
    logits = np.log(np.array([0.15, 0.5, 0.05, 0.3], np.float32))
    seen = Counter(draws(SamplingParams(10, temperature=1.0, top_p=0.75, seed=1), logits, 2000))
    assert set(seen) == {1, 3}
    # Renormalised within the nucleus: 0.5 / 0.8 and 0.3 / 0.8.
    assert seen[1] / 2000 == pytest.approx(0.625, abs=0.04)
    # Past 0.8 needs the third token too; without top_p all four appear.
    wider = draws(SamplingParams(10, temperature=1.0, top_p=0.85, seed=1), logits, 2000)
    assert set(wider) == {1, 3, 0}
    everything = draws(SamplingParams(10, temperature=1.0, seed=1), logits, 2000)
    assert set(everything) == {0, 1, 2, 3}


def test_top_p_zero_keeps_the_most_likely_token_and_combines_with_top_k() -> None:
    assert set(draws(SamplingParams(10, temperature=2.0, top_p=0.0, seed=3), count=200)) == {49}
    # top_k first (the 5 largest), then the nucleus of those at a high temperature.
    both = draws(SamplingParams(10, temperature=5.0, top_k=5, top_p=0.5, seed=3), count=500)
    assert set(both) <= {45, 46, 47, 48, 49} and 2 <= len(set(both)) < 5


def test_the_same_seed_gives_the_same_nucleus_draws() -> None:
    params = SamplingParams(10, temperature=0.9, top_p=0.7, seed=42)
    assert draws(params, count=50) == draws(params, count=50)


@pytest.mark.parametrize("top_p", [-0.1, 1.5])
def test_top_p_outside_zero_to_one_is_refused(top_p: float) -> None:
    with pytest.raises(InvalidInput, match="top_p"):
        SamplingParams(10, temperature=1.0, top_p=top_p)
