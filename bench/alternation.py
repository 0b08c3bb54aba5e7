"""--repeat N: the rows run in alternation (A B A B ...), and the median ratio per level.

On a shared 2-core machine one sweep of each server says little: others' work comes
and goes within minutes. Run in alternation, background load drifting during the run
falls on both sides of a ratio alike, and the median of the rounds' ratios is what a
note can quote. The table then shows, for each configuration and level, the round
whose throughput is the median (the lower of the two middle ones for even N).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from compare_rows import Outcome, best, peers


def median_outcomes(rounds: Sequence[Sequence[Outcome]]) -> list[Outcome]:
    """One outcome per configuration: at each level, the step of median throughput."""
    merged = []
    for runs in zip(*rounds, strict=True):
        first = runs[0]
        out = Outcome(first.config, round="median")
        levels = list(dict.fromkeys(s.concurrency for o in runs for s in o.steps))
        for level in levels:
            having = [o for o in runs if o.step(level) is not None]
            chosen = sorted(having, key=lambda o: o.throughput(level) or 0.0)[
                (len(having) - 1) // 2
            ]
            step = chosen.step(level)
            assert step is not None
            out.steps.append(step)
            out.server_cpu_us[level or 0] = chosen.server_cpu_us.get(level or 0)
        loads = [o.load_1m for o in runs if o.load_1m is not None]
        out.load_1m = statistics.median(loads) if loads else None
        starts = [o.startup_s for o in runs if o.startup_s is not None]
        out.startup_s = statistics.median(starts) if starts else None
        failed = [o.error for o in runs if o.error]
        if failed:
            out.error = (
                failed[0]
                if len(failed) == len(runs)
                else (f"{len(failed)} of {len(runs)} rounds failed: {failed[0]}")
            )
        merged.append(out)
    return merged


def median_ratios(
    rounds: Sequence[Sequence[Outcome]],
    ceilings: Sequence[dict[str, Any] | None],
    levels: Sequence[int],
) -> tuple[list[str], dict[str, Any]]:
    """batchserve's throughput over each peer's best (and the ceiling's), round by round,
    with the median per level; and the c=1 p50 ratio (below 1: batchserve is faster)."""
    data: dict[str, Any] = {}
    lines = [f"alternation, {len(rounds)} rounds (median ratio; each round's in brackets):"]
    names = peers([o for r in rounds for o in r])
    against = ["in-process ceiling", *names] if any(ceilings) else names
    for name in against:
        per_level: dict[str, Any] = {}
        for level in levels:
            ratios = []
            for outcomes, ceiling in zip(rounds, ceilings, strict=True):
                ours = best(outcomes, "batchserve", level)
                mine = ours.throughput(level) if ours else None
                if name == "in-process ceiling":
                    theirs = ceiling["throughput"] if ceiling and level > 1 else None
                else:
                    other = best(outcomes, name, level)
                    theirs = other.throughput(level) if other else None
                if mine is not None and theirs:
                    ratios.append(mine / theirs)
            if ratios:
                per_level[f"c={level}"] = _median_of(ratios)
        p50s = []
        low = levels[0]
        for outcomes, ceiling in zip(rounds, ceilings, strict=True):
            ours = best(outcomes, "batchserve", low)
            mine = ours.p50(low) if ours else None
            if name == "in-process ceiling":
                theirs = ceiling["p50_ms"] if ceiling else None
            else:
                lows = [p for o in outcomes if o.config.server == name and (p := o.p50(low))]
                theirs = min(lows) if lows else None
            if mine is not None and theirs:
                p50s.append(mine / theirs)
        if p50s:
            per_level[f"p50 c={low}"] = _median_of(p50s)
        data[name] = per_level
        cells = "; ".join(f"{key} {v['median']:.2f}x {v['rounds']}" for key, v in per_level.items())
        lines.append(f"  batchserve / {name}: {cells or 'no common steps'}")
    return lines, data


def _median_of(ratios: list[float]) -> dict[str, Any]:
    """A level's ratios over the rounds: their median, and each round's."""
    return {"median": statistics.median(ratios), "rounds": [round(r, 3) for r in ratios]}
