"""bench/wrk_runner.py's parser on wrk's real output (wrk 4.1.0, Debian), captured on loopback.

The captures in wrk_outputs/ are whole runs with bench/peers/wrk_post.lua (so with its
``wrk-summary`` line) unless named plain_*: batchserve on the demo model (ok_c8), a
route that answers 404 (non2xx), a closed port (refused), a server that sleeps past
``--timeout`` (timeout) or past a second (seconds), one that closes some connections
without answering (sockerr), and one that answers 503 to every fifth request (mixed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from wrk_runner import (
    NON_2XX,
    Post,
    parse_wrk_output,
    step_result,
    wrk_step,
)

from tests.bench import ROOT
from tests.live_server import LiveServer

OUTPUTS = Path(__file__).parent / "wrk_outputs"


def capture(name: str, summary: bool = True) -> str:
    text = (OUTPUTS / f"{name}.txt").read_text()
    return text if summary else re.sub(r"^wrk-summary .*\n", "", text, flags=re.M)


def test_a_clean_run_reads_exactly_from_the_scripts_summary_line():
    report = parse_wrk_output(capture("ok_c8"))
    assert report.requests == 844 and report.ok == 844
    assert report.duration_s == pytest.approx(2.005105)
    assert report.errors == {}
    lat = report.latency_ms
    assert (lat.p50, lat.p90, lat.p95, lat.p99) == (17.892, 25.195, 29.354, 56.278)
    assert lat.max == 67.826 and lat.mean == pytest.approx(19.3358)
    assert report.requests_per_s == 420.93


def test_without_the_summary_line_the_text_report_is_enough():
    text = parse_wrk_output(capture("ok_c8", summary=False))
    exact = parse_wrk_output(capture("ok_c8"))
    assert text.requests == exact.requests
    assert text.duration_s == pytest.approx(2.01)  # rounded in wrk's text
    assert text.latency_ms.p50 == pytest.approx(17.89)
    assert text.latency_ms.p99 == pytest.approx(56.28)
    assert text.latency_ms.p95 is None  # --latency prints 50/75/90/99 only
    assert text.latency_ms.mean == pytest.approx(19.34)
    assert text.latency_ms.max == pytest.approx(67.83)


def test_microseconds_and_thousands_in_a_plain_report():
    report = parse_wrk_output(capture("plain_get"))
    assert report.requests == 3698 and report.duration_s == pytest.approx(1.0)
    assert report.latency_ms.p50 == pytest.approx(0.507)
    assert report.latency_ms.p99 == pytest.approx(1.76)
    assert report.latency_ms.mean == pytest.approx(0.57087)
    assert report.latency_ms.max == pytest.approx(7.10)


def test_latencies_over_a_second():
    text = parse_wrk_output(capture("seconds", summary=False))
    assert text.latency_ms.p90 == pytest.approx(1540.0)  # "1.54s " with a trailing space
    assert text.latency_ms.max == pytest.approx(1550.0)
    exact = parse_wrk_output(capture("seconds"))
    assert exact.latency_ms.p90 == pytest.approx(1543.975)


@pytest.mark.parametrize("summary", [True, False])
def test_non_2xx_responses_are_errors_and_leave_no_latency(summary):
    report = parse_wrk_output(capture("non2xx", summary))
    assert report.requests == 2158 and report.ok == 0
    assert report.errors == {NON_2XX: 2158}
    assert report.latency_ms.p50 is None
    step = step_result(report, 1, 1.0, 0.05)
    assert step.throughput == 0.0 and step.error_total == 2158


@pytest.mark.parametrize("summary", [True, False])
def test_some_non_2xx_among_successes(summary):
    report = parse_wrk_output(capture("mixed", summary))
    assert report.requests == 229 and report.non_2xx == 46 and report.ok == 183
    step = step_result(report, 4, 1.0, 0.1)
    assert step.throughput == pytest.approx(183 / report.duration_s)
    assert step.errors == {NON_2XX: 46}
    assert step.latency_ms.p50 is not None  # wrk's latency includes the 503s: documented


@pytest.mark.parametrize("summary", [True, False])
def test_socket_timeouts_count_as_timeout_errors(summary):
    report = parse_wrk_output(capture("timeout", summary))
    assert report.requests == 20 and report.errors == {"timeout": 4}
    step = step_result(report, 4, 1.0, 0.02)
    assert step.requests == 24 and step.ok == 20 and step.errors == {"timeout": 4}


@pytest.mark.parametrize("summary", [True, False])
def test_connections_closed_mid_request_are_read_errors(summary):
    report = parse_wrk_output(capture("sockerr", summary))
    assert report.requests == 257 and report.errors == {"read": 86}


def test_a_server_that_is_not_there_is_one_connect_error():
    report = parse_wrk_output(capture("refused"))
    assert report.requests == 0 and report.errors == {"connect": 1}
    step = step_result(report, 4, 1.0, 0.0)
    assert step.throughput == 0.0 and step.error_total == 1
    assert "Connection refused" in step.first_errors["connect"]
    assert step.latency_ms.p50 is None and step.client_cpu_per_request_us == 0.0


def test_anything_else_is_refused():
    with pytest.raises(ValueError, match="not a wrk report"):
        parse_wrk_output("wrk: invalid option -- 'x'\nUsage: wrk <options> <url>\n")


def test_a_step_has_the_generators_fields():
    report = parse_wrk_output(capture("ok_c8"))
    step = step_result(report, 8, 1.0, 0.0844)
    assert step.mode == "closed" and step.concurrency == 8 and step.label == "c=8"
    assert step.throughput == pytest.approx(844 / 2.005105)
    assert step.client_cpu_per_request_us == pytest.approx(100.0)
    assert step.client_cpu_percent == pytest.approx(100 * 0.0844 / 2.005105)
    assert step.as_dict()["latency_ms"]["p95"] == 29.354


def test_a_real_wrk_step_against_the_demo_model():
    """wrk itself (make test installs it) posting the sample JPEG to a live server."""
    image = (ROOT / "samples" / "red_circle.jpg").read_bytes()
    with LiveServer([ROOT / "models"]) as server:
        step, text = wrk_step(
            Post(f"{server.url}/v1/models/shapes/predict", image, "image/jpeg"), 2, 1.0, 0.0, 5.0
        )
    assert step.errors == {}, text
    assert step.ok > 0 and step.throughput > 0
    assert step.latency_ms is not None and 0 < step.latency_ms.p50 <= step.latency_ms.p99


def test_a_real_wrk_step_against_nothing_listening():
    # A closed loopback port: wrk exits at once, and the step says so.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opened: list[bool] = []
    step, text = wrk_step(
        Post(f"http://127.0.0.1:{port}/predict", b"x", "application/octet-stream"),
        2,
        1.0,
        0.0,
        5.0,
        on_measure=opened.append,
    )
    assert opened == [True, False]
    assert step.errors == {"connect": 1} and "unable to connect" in text
