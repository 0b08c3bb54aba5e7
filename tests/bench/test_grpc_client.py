"""The load generator's gRPC client under the same loops as HTTP, against a real server's
gRPC port on loopback: counts, errors by kind, timeouts, a closed port."""

from __future__ import annotations

import socket
import time

from batchserve.bench.grpc_target import GrpcTarget
from batchserve.bench.loadgen import closed_loop, event_loop, open_loop
from tests.bench.conftest import slow_grpc_target


def test_closed_loop_over_grpc_counts_add_up(slow_server):
    with event_loop() as run:
        result = run(
            closed_loop(
                slow_grpc_target(slow_server, "slowq"),
                clients=2,
                duration=1.0,
                warmup=0.3,
                timeout=10,
            )
        )
    assert result.errors == {}
    assert result.requests == result.ok > 5
    lat = result.latency_ms
    assert lat.p50 <= lat.p90 <= lat.p95 <= lat.p99 <= lat.max
    # One single-threaded instance: two clients see about two service times each.
    assert lat.p50 > 1000.0 / result.throughput
    assert result.client_cpu_per_request_us is not None and result.client_cpu_per_request_us > 0


def test_a_full_queue_is_counted_as_grpc_unavailable(slow_server):
    with event_loop() as run:
        result = run(
            closed_loop(
                slow_grpc_target(slow_server, "slow"),
                clients=12,
                duration=1.0,
                warmup=0.3,
                timeout=10,
            )
        )
    assert result.errors.get("grpc_unavailable", 0) > 0, result.errors
    assert result.ok > 0
    assert result.requests == result.ok + result.error_total
    assert "queue is full" in result.first_errors["grpc_unavailable"]


def test_open_loop_over_grpc_measures_from_the_intended_time(slow_server):
    with event_loop() as run:
        result = run(
            open_loop(
                slow_grpc_target(slow_server, "slowq"),
                rate=10.0,
                duration=1.0,
                warmup=0.2,
                timeout=10,
            )
        )
    assert result.errors == {}
    assert result.ok >= 5
    assert result.send_lag_p99_ms is not None


def test_the_clients_deadline_counts_as_a_timeout(slow_server):
    started = time.perf_counter()
    with event_loop() as run:
        result = run(
            closed_loop(
                slow_grpc_target(slow_server, "slowq"),
                clients=1,
                duration=0.2,
                warmup=0.05,
                timeout=0.003,
            )
        )
    assert result.errors.get("timeout", 0) > 0, result.errors
    assert result.ok == 0
    assert time.perf_counter() - started < 5


def test_a_closed_port_counts_connect_errors_without_spinning():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = GrpcTarget(
        f"grpc://127.0.0.1:{port}/m", "127.0.0.1", port, "m", "", (b"",), (), "nothing"
    )
    with event_loop() as run:
        result = run(closed_loop(target, clients=2, duration=0.5, warmup=0.1, timeout=1))
    assert result.ok == 0
    assert set(result.errors) == {"connect"}
    assert result.errors["connect"] <= 30
