"""Issue 13's targets in bench/compare_targets.py: met, missed, or not measured."""

from __future__ import annotations

from tests.bench.rows import outcome

from compare_targets import FASTAPI_POOL, FLASK_ORT, LITSERVE, targets  # isort: skip

CEILING = {"throughput": 100.0, "p50_ms": 10.0}
LEVELS = [1, 8, 64]


def checks_by_name(outcomes, ceiling=CEILING, levels=LEVELS):
    lines, checks = targets(outcomes, ceiling, levels)
    return {c["target"]: c for c in checks}, lines


def test_every_target_met():
    ours = outcome("batchserve", {1: (90, 10.2), 8: (120, 60), 64: (120, 500)}, rss_mb=190)
    rows = [
        ours,
        outcome(FLASK_ORT, {1: (70, 14), 8: (100, 80), 64: (100, 600)}, rss_mb=200),
        outcome(FASTAPI_POOL, {1: (70, 15), 8: (90, 80), 64: (90, 600)}),
        outcome(LITSERVE, {1: (60, 16), 8: (95, 80), 64: (80, 700)}),
    ]
    checks, lines = checks_by_name(rows)
    assert all(c["met"] for c in checks.values()), [c for c in checks.values() if not c["met"]]
    assert checks["c=64 >= 1.0x in-process ceiling"]["value"] == 1.2
    assert checks[f"c=64 >= 1.15x {FLASK_ORT} best"]["value"] == 1.2
    assert checks["c=1 p50 below every peer's (ms, against the lowest)"]["goal"] == 14
    assert any(line.startswith("  [met ] RSS at c=64") for line in lines)


def test_misses_and_the_best_configuration_of_a_peer():
    ours = outcome("batchserve", {1: (90, 11), 8: (100, 60), 64: (100, 500)}, rss_mb=250)
    rows = [
        ours,
        outcome(FLASK_ORT, {1: (70, 10.5), 8: (80, 80), 64: (80, 600)}, label="a", rss_mb=200),
        outcome(FLASK_ORT, {1: (70, 14), 8: (95, 80), 64: (95, 600)}, label="b", rss_mb=210),
    ]
    checks, lines = checks_by_name(rows)
    assert checks["c=64 >= 1.0x in-process ceiling"]["met"]  # 1.0 exactly
    flask = checks[f"c=64 >= 1.15x {FLASK_ORT} best"]
    assert not flask["met"] and flask["value"] == 100 / 95  # against config b, the best
    assert not checks[f"c=8 >= 1.1x {FLASK_ORT} best"]["met"]
    assert not checks["c=1 p50 <= 1.05x ceiling's lone-image p50 (ratio)"]["met"]  # 1.1
    assert not checks["c=1 p50 below every peer's (ms, against the lowest)"]["met"]
    rss = checks[f"RSS at c=64 <= {FLASK_ORT}'s (MB)"]
    assert rss["goal"] == 210 and not rss["met"]  # the best config's RSS at c=64
    assert any(line.startswith("  [MISS]") for line in lines)


def test_what_the_run_cannot_judge_is_not_measured_never_met():
    ours = outcome("batchserve", {1: (90, 10), 8: (100, 60)})
    rows = [ours, outcome(FLASK_ORT, {1: (70, 14), 8: (80, 80)})]
    checks, lines = checks_by_name(rows, ceiling=None, levels=[1, 8])
    for name in ("c=64 >= 1.0x in-process ceiling", f"c=64 >= 1.15x {LITSERVE} best"):
        assert checks[name]["met"] is None and checks[name]["missing"] == "no c=64 step"
    lone = checks["c=1 p50 <= 1.05x ceiling's lone-image p50 (ratio)"]
    assert lone["met"] is None and lone["missing"] == "the ceiling was not run"
    assert checks[f"c=8 >= 1.1x {FLASK_ORT} best"]["met"] is True
    assert "  [ -- ] c=64 >= 1.0x in-process ceiling: not measured (no c=64 step)" in lines


def test_a_peer_that_did_not_run_is_no_target_at_c8():
    failed = outcome("LitServe", {})
    failed.error = "not installed: litserve"
    rows = [outcome("batchserve", {8: (100, 60), 64: (100, 60)}), failed]
    checks, _ = checks_by_name(rows, levels=[8, 64])
    assert f"c=8 >= 1.1x {LITSERVE} best" not in checks
    assert checks[f"c=64 >= 1.15x {LITSERVE} best"]["missing"] == f"{LITSERVE} not run"


def test_without_batchserve_there_are_no_targets():
    assert targets([outcome(FLASK_ORT, {1: (1, 1)})], CEILING, [1]) == (
        ["batchserve did not run"],
        [],
    )


def test_the_tf_rows_are_not_peers_of_the_onnx_targets():
    rows = [
        outcome("batchserve", {8: (100, 60)}),
        outcome("Flask+Gunicorn+TF (the article's)", {8: (10, 60)}, group="tf"),
    ]
    checks, _ = checks_by_name(rows, levels=[8])
    assert not any("article" in name for name in checks)
