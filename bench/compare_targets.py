"""The ratios and issue 13's targets for bench/compare.py, whatever model, route or client.

Targets (all on the run's own rows, same client):

- c=64 throughput >= 1.0x the in-process ceiling, and >= 1.15x the best configuration
  of each of Flask + ORT, the FastAPI pool and LitServe;
- c=8 throughput >= 1.1x every peer's best configuration;
- c=1 p50 <= 1.05x the ceiling's lone-image p50, and below every peer's c=1 p50;
- RSS at c=64 <= the Flask + ORT peer's (its best configuration at c=64);
- no errors.

A target that the run cannot judge (its level not in --concurrency, the peer not run)
is printed as not measured, never as met.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from compare_rows import ON_RAY, Outcome, best, peers

FLASK_ORT = "Flask+Gunicorn+ORT"
FASTAPI_POOL = "FastAPI pool (hand-written)"
LITSERVE = "LitServe"
#: The peers whose best configuration batchserve must beat by 15 % at c=64.
C64_PEERS = (FLASK_ORT, FASTAPI_POOL, LITSERVE)
ARTICLE = "Flask+Gunicorn+TF (the article's)"
Check = dict[str, Any]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class Checks:
    """Targets met, missed or not measured, as data and as lines."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(
        self, name: str, value: float | None, goal: float | None, higher: bool, why: str = ""
    ) -> None:
        """`value` against `goal`; either None: not measured (`why` says what is missing)."""
        met = None
        if value is not None and goal is not None:
            met = value >= goal if higher else value <= goal
        self.items.append(
            {"target": name, "value": value, "goal": goal, "met": met, "missing": why or None}
        )

    def lines(self) -> list[str]:
        out = []
        for c in self.items:
            if c["met"] is None:
                out.append(f"  [ -- ] {c['target']}: not measured ({c['missing'] or 'no data'})")
                continue
            mark = "met " if c["met"] else "MISS"
            out.append(f"  [{mark}] {c['target']}: {_fmt(c['value'])} (goal {_fmt(c['goal'])})")
        return out


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def targets(
    outcomes: Sequence[Outcome], ceiling_result: dict[str, Any] | None, levels: Sequence[int]
) -> tuple[list[str], list[Check]]:
    """The ratios at each level and issue 13's targets, as lines and as data."""
    onnx = [o for o in outcomes if o.config.group == "onnx"]
    top = 64 if 64 in levels else max(levels)
    ours = best(onnx, "batchserve", top)
    if ours is None:
        return (["batchserve did not run"] if onnx else []), []
    others = peers([o for o in onnx if o.steps])  # a peer skipped or failed is no target
    lines = []
    for level in levels:
        thr = ours.throughput(level)
        parts = [f"batchserve c={level}: {_fmt(thr, 1)} req/s"]
        if ceiling_result and level > 1:
            r = ratio(thr, ceiling_result["throughput"])
            parts.append(f"{_fmt(r)}x ceiling")
        for server in others:
            theirs = best(onnx, server, level)
            if theirs is not None:
                parts.append(f"{_fmt(ratio(thr, theirs.throughput(level)))}x {server}")
        lines.append("; ".join(parts))

    checks = Checks()
    _throughput_targets(checks, onnx, ours, others, ceiling_result, levels)
    _latency_targets(checks, onnx, ours, others, ceiling_result, levels)
    flask = best(onnx, FLASK_ORT, 64)
    ours_rss, flask_rss = ours.rss_at(64), flask.rss_at(64) if flask else None
    checks.add(
        f"RSS at c=64 <= {FLASK_ORT}'s (MB)",
        None if ours_rss is None else ours_rss / 1e6,
        None if flask_rss is None else flask_rss / 1e6,
        False,
        "no c=64 step" if 64 not in levels else f"no RSS of batchserve or {FLASK_ORT}",
    )
    checks.add("0 errors (batchserve)", float(ours.errors), 0.0, False)
    lines += ray_lines(onnx, ours, levels[0], top, checks.add)
    lines.append("targets (issue 13):")
    lines += checks.lines()
    return lines, checks.items


def _throughput_targets(
    checks: Checks,
    onnx: Sequence[Outcome],
    ours: Outcome,
    others: Sequence[str],
    ceiling_result: dict[str, Any] | None,
    levels: Sequence[int],
) -> None:
    no64 = "no c=64 step" if 64 not in levels else ""
    no8 = "no c=8 step" if 8 not in levels else ""
    checks.add(
        "c=64 >= 1.0x in-process ceiling",
        ratio(ours.throughput(64), ceiling_result["throughput"] if ceiling_result else None),
        1.0,
        True,
        no64 or "the ceiling was not run",
    )
    peer_targets = [
        (64, 1.15, C64_PEERS, no64, "not run"),
        (8, 1.1, others, no8, "did not complete c=8"),
    ]
    for level, goal, servers, level_missing, peer_missing in peer_targets:
        for server in servers:
            theirs = best(onnx, server, level)
            checks.add(
                f"c={level} >= {goal}x {server} best",
                ratio(ours.throughput(level), theirs.throughput(level) if theirs else None),
                goal,
                True,
                level_missing or f"{server} {peer_missing}",
            )


def _latency_targets(
    checks: Checks,
    onnx: Sequence[Outcome],
    ours: Outcome,
    others: Sequence[str],
    ceiling_result: dict[str, Any] | None,
    levels: Sequence[int],
) -> None:
    no1 = "no c=1 step" if 1 not in levels else ""
    mine = ours.p50(1)
    lone = ceiling_result["p50_ms"] if ceiling_result else None
    checks.add(
        "c=1 p50 <= 1.05x ceiling's lone-image p50 (ratio)",
        ratio(mine, lone),
        1.05,
        False,
        no1 or "the ceiling was not run",
    )
    theirs = [p for o in onnx if o.config.server in others and (p := o.p50(1)) is not None]
    checks.add(
        "c=1 p50 below every peer's (ms, against the lowest)",
        mine,
        min(theirs) if theirs else None,
        False,
        no1 or "no peer ran",
    )


def ray_lines(
    outcomes: Sequence[Outcome],
    ours: Outcome,
    low: int,
    mid: int,
    check: Callable[..., None],
) -> list[str]:
    """batchserve on Ray against plain Ray Serve, and what Ray's proxy costs a request."""
    on_ray = {o.config.label.split(" (")[0]: o for o in outcomes if o.config.server == ON_RAY}
    lines = []
    two, plain = on_ray.get("2 replicas x 1 CPU"), best(outcomes, "Ray Serve", mid)
    if two and two.throughput(mid) and plain and plain.throughput(mid):
        r = (two.throughput(mid) or 0.0) / (plain.throughput(mid) or 1.0)
        lines.append(
            f"{ON_RAY}, 2 replicas, c={mid}: {two.throughput(mid):.1f}/s, {r:.2f}x plain "
            f"Ray Serve's best ({plain.config.label}, {plain.throughput(mid):.1f}/s)"
        )
        check(f"c={mid} on Ray (2 replicas) >= 1.5x Ray Serve best", r, 1.5, True)
    one = on_ray.get("1 replica x 2 CPUs")
    direct_low, proxied_low = ours.step(low), one.step(low) if one else None
    if direct_low and proxied_low and direct_low.latency_ms.p50 and proxied_low.latency_ms.p50:
        extra = proxied_low.latency_ms.p50 - direct_low.latency_ms.p50
        thr = ratio(one.throughput(mid) if one else None, ours.throughput(mid))
        lines.append(
            f"Ray's proxy, 1 replica of 2 CPUs against batchserve alone: c={low} p50 "
            f"{proxied_low.latency_ms.p50:.1f} vs {direct_low.latency_ms.p50:.1f} ms "
            f"(+{extra:.1f} ms a request); c={mid} throughput {_fmt(thr)}x"
        )
    return lines


def tf_comparison(outcomes: Sequence[Outcome], levels: Sequence[int]) -> list[str]:
    """The TensorFlow rows: batchserve on the SavedModel and on the .tflite file against
    the article's Flask app, at c=64 (or the highest level), c=1 latency and RSS."""
    mid = 64 if 64 in levels else max(levels)
    low = levels[0]
    theirs = best(outcomes, ARTICLE, mid)
    lines = []
    for server in ("batchserve TF SavedModel", "batchserve TFLite"):
        ours = best(outcomes, server, mid)
        if ours is None:
            continue
        thr = ours.throughput(mid) or 0.0
        line = f"{server} c={mid}: {thr:.1f} req/s"
        if theirs is not None and theirs.throughput(mid):
            line += f", {thr / (theirs.throughput(mid) or 1.0):.2f}x the article's Flask+TF"
            ours_low, theirs_low = ours.p50(low), theirs.p50(low)
            if ours_low and theirs_low:
                line += f"; c={low} p50 {ours_low:.1f} ms against {theirs_low:.1f} ms"
            if ours.rss_peak and theirs.rss_peak:
                line += f"; RSS {ours.rss_peak / 1e6:.0f} MB against {theirs.rss_peak / 1e6:.0f} MB"
        lines.append(line)
    return lines
