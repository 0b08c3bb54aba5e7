"""bench/compare.py's table (terminal, Markdown, CSV) and chart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compare_rows import Outcome, best, is_ours
from rich.table import Table


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cpu_level(levels: Sequence[int]) -> int:
    """The level whose server CPU per request the table shows: c=64, else the highest."""
    return 64 if 64 in levels else max(levels)


def headers(levels: Sequence[int]) -> list[str]:
    return [
        "server",
        "configuration",
        *[f"c={c} req/s" for c in levels],
        f"p50 c={levels[0]} ms",
        f"p99 c={levels[-1]} ms",
        f"CPU µs/req c={cpu_level(levels)}",
        "errors",
        "RSS MB",
        "load",
        "note",
    ]


def table_rows(outcomes: Sequence[Outcome], levels: Sequence[int]) -> list[list[str]]:
    rows = []
    for o in outcomes:
        first, last = o.step(levels[0]), o.step(levels[-1])
        rows.append(
            [
                o.config.server,
                o.config.label,
                *[fmt(o.throughput(c)) for c in levels],
                fmt(first.latency_ms.p50 if first else None),
                fmt(last.latency_ms.p99 if last else None),
                fmt(o.server_cpu_us.get(cpu_level(levels)), 0),
                "-" if o.error else str(o.errors),
                fmt(None if o.rss_peak is None else o.rss_peak / 1e6, 0),
                fmt(o.load_1m),
                o.error or "",
            ]
        )
    return rows


def ceiling_row(ceiling_result: dict[str, Any], levels: Sequence[int], route: str) -> list[str]:
    runs = ceiling_result["runs"]
    spread = " / ".join(f"{c['throughput']:.1f}" for c in runs)
    what = "inference only" if route == "tensor" else "decode + infer"
    return (
        ["in-process ceiling", f"2 threads x own 1-thread session, {what}, no HTTP"]
        + [fmt(ceiling_result["throughput"]) if c > 1 else "-" for c in levels]
        + [fmt(ceiling_result["p50_ms"]), "-", fmt(ceiling_result.get("cpu_us_per_request"), 0)]
        + ["0", "-", fmt(runs[0]["load_1m"])]
        + [f"mean of {len(runs)} runs: {spread} /s; p50: lone image, 2 threads"]
    )


def rich_table(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title)
    for h in head:
        table.add_column(h, justify="left" if h in ("server", "configuration", "note") else "right")
    for r in rows:
        table.add_row(*r)
    return table


def markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_chart(
    path: Path,
    outcomes: Sequence[Outcome],
    ceiling_result: dict[str, Any] | None,
    levels: Sequence[int],
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    mid = cpu_level(levels)
    servers = list(dict.fromkeys(o.config.server for o in outcomes))
    chosen = [b for s in servers if (b := best(outcomes, s, mid)) is not None]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 11))
    for o in chosen:
        xs = [s.concurrency for s in o.steps]
        ours = o.config.server == "batchserve"
        name = o.config.server + ("" if ours else " (best)")
        width = 2.5 if ours else 1.2
        top.plot(xs, [s.throughput for s in o.steps], "o-", lw=width, label=name)
        middle.plot(
            xs,
            [s.latency_ms.p99 or float("nan") for s in o.steps],
            "s-",
            lw=width,
            label=f"{o.config.server} p99",
        )
    if ceiling_result:
        top.axhline(
            ceiling_result["throughput"], color="black", ls="--", lw=1, label="in-process ceiling"
        )
    top.set_ylabel("throughput (req/s)")
    top.set_ylim(bottom=0)
    middle.set_ylabel("p99 latency (ms)")
    middle.set_yscale("log")
    middle.yaxis.set_major_formatter(ScalarFormatter())
    for ax in (top, middle):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(levels), [str(c) for c in levels])
        ax.set_xlabel("concurrent clients")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small", loc="best", framealpha=0.6)
    names = [o.config.server.split(" (")[0] for o in chosen]
    rss = [(o.rss_peak or 0) / 1e6 for o in chosen]
    colours = ["tab:blue" if is_ours(n) else "tab:gray" for n in names]
    bars = bottom.bar(names, rss, color=colours)
    bottom.bar_label(bars, fmt="%.0f")
    bottom.set_ylabel("peak RSS (MB)")
    bottom.tick_params(axis="x", labelsize="small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
