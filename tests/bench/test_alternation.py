"""--repeat in bench/alternation.py: the median step per level, the median ratio per level."""

from __future__ import annotations

import pytest

from tests.bench.rows import outcome

from alternation import median_outcomes, median_ratios  # isort: skip


def rounds_of(ours: list[float], theirs: list[float]):
    return [
        [outcome("batchserve", {1: (a, 10.0), 8: (a, 20.0)}),
         outcome("Flask+Gunicorn+ORT", {1: (b, 12.0), 8: (b, 25.0)})]
        for a, b in zip(ours, theirs, strict=True)
    ]  # fmt: skip


def test_the_median_round_of_each_level_makes_the_row():
    rounds = rounds_of([100, 80, 120], [90, 100, 50])
    rounds[1][0].server_cpu_us[8] = 777.0
    ours, theirs = median_outcomes(rounds)
    assert ours.throughput(8) == 100 and theirs.throughput(8) == 90
    assert ours.round == "median" and ours.server_cpu_us[8] == 1000.0
    rounds[1][0].steps[1].throughput = 100.5  # now round 2 is the median at c=8
    ours, _ = median_outcomes(rounds)
    assert ours.throughput(8) == 100.5 and ours.server_cpu_us[8] == 777.0


def test_even_rounds_take_the_lower_middle():
    (ours, _) = median_outcomes(rounds_of([100, 80], [90, 100]))
    assert ours.throughput(1) == 80


def test_a_row_that_failed_in_some_rounds_says_so():
    rounds = rounds_of([100, 80], [90, 100])
    rounds[0][1].error = "server exited (1)"
    rounds[0][1].steps = []
    _, theirs = median_outcomes(rounds)
    assert theirs.error == "1 of 2 rounds failed: server exited (1)"
    assert theirs.throughput(8) == 100


def test_median_ratio_per_level_against_peers_and_the_ceiling():
    rounds = rounds_of([100, 80, 120], [90, 100, 50])
    ceilings = [{"throughput": 100.0, "p50_ms": 8.0}] * 3
    lines, data = median_ratios(rounds, ceilings, [1, 8])
    flask = data["Flask+Gunicorn+ORT"]
    assert flask["c=8"]["rounds"] == [pytest.approx(1.111, abs=1e-3), 0.8, 2.4]
    assert flask["c=8"]["median"] == pytest.approx(100 / 90)
    assert flask["p50 c=1"]["median"] == pytest.approx(10 / 12)
    ceiling = data["in-process ceiling"]
    assert "c=1" not in ceiling  # the ceiling's throughput is not a c=1 figure
    assert ceiling["c=8"]["median"] == 1.0 and ceiling["p50 c=1"]["median"] == 1.25
    assert lines[0].startswith("alternation, 3 rounds")
