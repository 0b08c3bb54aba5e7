"""Durations, rates and concurrency lists as the command line writes them."""

from __future__ import annotations

import pytest

from batchserve.bench.units import (
    format_rate,
    parse_concurrency,
    parse_duration,
    parse_rate,
    parse_rates,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60.0), ("2s", 2.0), ("500ms", 0.5), ("1.5m", 90.0), ("3", 3.0), (" 250 ms", 0.25)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "10x", "-1s", "0s"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "rate"), [("80/s", 80.0), ("80", 80.0), ("4800/m", 80.0), ("0.5/s", 0.5)]
)
def test_rates(text, rate):
    assert parse_rate(text) == pytest.approx(rate)
    assert parse_rate(format_rate(parse_rate(text))) == pytest.approx(rate)


def test_rate_and_concurrency_lists():
    assert parse_rates("20/s,40/s") == [20.0, 40.0]
    assert parse_concurrency("1,2,4,8,16,32,64,100") == [1, 2, 4, 8, 16, 32, 64, 100]
    for bad in ("0,1", "a,b", ""):
        with pytest.raises(ValueError):
            parse_concurrency(bad)
    with pytest.raises(ValueError):
        parse_rate("0/s")
