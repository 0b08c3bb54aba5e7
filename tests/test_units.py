"""Sizes, durations, rates and concurrency lists as operators write them."""

from __future__ import annotations

import pytest

from batchserve.units import (
    format_rate,
    format_size,
    parse_concurrency,
    parse_duration,
    parse_rate,
    parse_rates,
    parse_size,
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
    with pytest.raises(ValueError):
        parse_size(text)


def test_sizes_parse_in_si_and_binary_units():
    assert parse_size("400MB") == 400_000_000
    assert parse_size("2GB") == 2_000_000_000
    assert parse_size("1.5G") == 1_500_000_000
    assert parse_size("2GiB") == 2 * 1024**3
    assert parse_size("1024") == 1024


def test_sizes_format_in_the_units_they_parse_in():
    assert format_size(400_000_000) == "400.0 MB"
    assert parse_size("400.0 MB") == 400_000_000
