"""The load generator against a real server on loopback: counts, errors by kind, queueing."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest

from batchserve.bench.loadgen import arrival_offsets, closed_loop, event_loop, open_loop
from batchserve.bench.stats import StepResult
from batchserve.bench.targets import Endpoint, Target, encode_request
from tests.bench.conftest import slow_target


def test_poisson_arrivals_have_the_rate_and_are_reproducible():
    rng = np.random.default_rng(7)
    times = arrival_offsets(200.0, 10.0, "poisson", rng)
    assert times[0] == 0.0 and np.all(np.diff(times) >= 0) and times[-1] < 10.0
    assert 1800 < len(times) < 2200  # 2000 expected, sd about 45
    gaps = np.diff(times)
    # Exponential gaps: mean 1/rate and a coefficient of variation of 1 (uniform has 0).
    assert np.mean(gaps) == pytest.approx(1 / 200.0, rel=0.1)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, abs=0.1)
    again = arrival_offsets(200.0, 10.0, "poisson", np.random.default_rng(7))
    np.testing.assert_array_equal(times, again)


def test_uniform_arrivals_are_evenly_spaced():
    times = arrival_offsets(50.0, 2.0, "uniform", np.random.default_rng(0))
    assert len(times) == 100
    np.testing.assert_allclose(np.diff(times), 0.02)


def test_closed_loop_counts_add_up(slow_server):
    with event_loop() as run:
        result = run(
            closed_loop(
                slow_target(slow_server, "slowq"), clients=2, duration=1.0, warmup=0.3, timeout=10
            )
        )
    assert result.errors == {}
    assert result.requests == result.ok > 5
    assert result.throughput == pytest.approx(result.ok / result.duration_s)
    lat = result.latency_ms
    assert lat.p50 <= lat.p90 <= lat.p95 <= lat.p99 <= lat.max
    # One single-threaded instance: two clients see about two service times each.
    assert lat.p50 > 1000.0 / result.throughput
    assert result.client_cpu_per_request_us is not None and result.client_cpu_per_request_us > 0


def test_503_from_a_full_queue_is_counted_by_kind(slow_server):
    with event_loop() as run:
        result = run(
            closed_loop(
                slow_target(slow_server, "slow"), clients=12, duration=1.0, warmup=0.3, timeout=10
            )
        )
    assert result.errors.get("status_503", 0) > 0, result.errors
    assert result.ok > 0
    assert result.requests == result.ok + result.error_total
    assert "queue is full" in result.first_errors["status_503"]


def test_open_loop_latency_includes_the_queue_of_a_slowed_server(slow_server):
    target = slow_target(slow_server, "slowq")
    with event_loop() as run:
        alone = run(closed_loop(target, clients=1, duration=1.0, warmup=0.3, timeout=10))
        capacity = alone.throughput
        # Three times what the server can do: the backlog grows for the whole step.
        over = run(
            open_loop(
                target,
                rate=3 * capacity,
                duration=1.5,
                warmup=0.0,
                timeout=20,
                arrival="uniform",
            )
        )
    service_ms = alone.latency_ms.p50
    assert over.error_total == 0, over.errors
    assert over.requests == pytest.approx(3 * capacity * 1.5, rel=0.05)
    # Measured from the intended send time, the wait in the queue is in the latency:
    # by the end of the step requests wait about as long as the step has run.
    assert over.latency_ms.p50 > 10 * service_ms, (over.latency_ms, service_ms)
    assert over.latency_ms.max > 1000.0
    # ...and it is the server's queue, not the generator sending late.
    assert over.send_lag_p99_ms is not None
    assert over.send_lag_p99_ms < over.latency_ms.p50 / 4, over.send_lag_p99_ms
    assert over.throughput < 2 * capacity


def test_a_late_send_counts_from_the_intended_time(slow_server):
    """A stall on the sending side (here the generator's own loop, blocked for 0.6 s) makes
    requests go out late; their latency still starts when they were meant to go."""

    async def stalled() -> StepResult:
        asyncio.get_running_loop().call_later(0.5, time.sleep, 0.6)
        return await open_loop(
            slow_target(slow_server, "slowq"),
            rate=10.0,
            duration=1.5,
            warmup=0.0,
            timeout=10,
            arrival="uniform",
        )

    with event_loop() as run:
        result = run(stalled())
    assert result.error_total == 0
    assert result.send_lag_p99_ms is not None and result.send_lag_p99_ms > 300
    # Measured from the actual send, the late requests would look as fast as the others.
    assert result.latency_ms.max > 400
    assert result.latency_ms.max >= result.send_lag_p99_ms


def test_open_loop_below_capacity_sees_the_service_time(slow_server):
    target = slow_target(slow_server, "slowq")
    with event_loop() as run:
        result = run(open_loop(target, rate=10.0, duration=1.5, warmup=0.2, timeout=10, seed=3))
    assert result.error_total == 0
    assert result.latency_ms.p50 < 500.0
    assert result.throughput == pytest.approx(10.0, rel=0.5)


def test_timeouts_are_counted_and_bounded(slow_server):
    started = time.perf_counter()
    with event_loop() as run:
        result = run(
            closed_loop(
                slow_target(slow_server, "slowq"),
                clients=1,
                duration=0.2,
                warmup=0.05,
                timeout=0.003,
            )
        )
    # Short: the server still runs what the client gave up on, and later tests wait for it.
    assert result.errors.get("timeout", 0) > 0, result.errors
    assert time.perf_counter() - started < 5


def test_open_loop_cap_drops_requests(slow_server):
    with event_loop() as run:
        result = run(
            open_loop(
                slow_target(slow_server, "slowq"),
                rate=200.0,
                duration=0.5,
                warmup=0.0,
                timeout=10,
                max_outstanding=2,
            )
        )
    assert result.errors.get("dropped", 0) > 50, result.errors
    assert result.ok > 0


def test_a_closed_port_counts_connect_errors_without_spinning():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = Endpoint.parse(f"http://127.0.0.1:{port}/predict")
    target = Target(endpoint, "GET", (encode_request(endpoint, "GET", None),), "nothing")
    with event_loop() as run:
        result = run(closed_loop(target, clients=2, duration=0.5, warmup=0.1, timeout=1))
    assert result.ok == 0
    assert set(result.errors) == {"connect"}
    # Backing off 50 ms after each refusal: about 10 a client in the window, not thousands.
    assert result.errors["connect"] <= 30
