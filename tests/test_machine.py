"""`cpu_count`: the cores a process counts as its own, and the override a Ray Serve
replica or a container sets."""

from __future__ import annotations

import os

import pytest

from batchserve.machine import CPUS_ENV, cpu_count


def test_without_the_override_the_cores_are_the_process_affinity(monkeypatch):
    monkeypatch.delenv(CPUS_ENV, raising=False)
    assert cpu_count() == len(os.sched_getaffinity(0))


def test_the_override_wins_over_the_affinity(monkeypatch):
    monkeypatch.setenv(CPUS_ENV, str(len(os.sched_getaffinity(0)) + 5))
    assert cpu_count() == len(os.sched_getaffinity(0)) + 5


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_override_is_refused_naming_the_variable(monkeypatch, bad):
    monkeypatch.setenv(CPUS_ENV, bad)
    with pytest.raises(ValueError, match=CPUS_ENV):
        cpu_count()
