"""Check a model repository before deploying it: every model loads as `serve` would load
it (model.yaml, artifact, runtime, layout, warm-up, sharing), or the command says which
does not and why. What a user's CI runs before a deploy.

    batchserve validate models s3://bucket/prod/models

Exit status: 0 when every model and version the policies name is ready, 1 when any
is not (each one named, with the reason), 2 when the arguments cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from batchserve.repository.states import READY
from batchserve.server.app import build_manager
from batchserve.server.command import add_repository_arguments
from batchserve.server.settings import ServerSettings

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repositories", nargs="*", metavar="REPO", help="folders or s3:// URLs")
    add_repository_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args: argparse.Namespace) -> int:
    repositories = [*args.repositories, *(args.repository or [])]
    if not repositories:
        print("batchserve validate: which repository? (REPO or --repository)", file=sys.stderr)
        return EXIT_USAGE
    settings = ServerSettings(
        repositories=tuple(repositories),
        cache_dir=args.cache_dir,
        s3_endpoint_url=args.s3_endpoint_url,
        profile_budget_s=args.profile_budget,
    )
    manager = build_manager(settings)
    try:
        manager.load_all()
        loaded = {(m.name, m.version): m for m in manager.loaded()}
        rows = [
            {
                "model": s.name,
                "version": s.version or None,
                "state": s.state,
                "scheduling": loaded[(s.name, s.version)].scheduling
                if (s.name, s.version) in loaded
                else None,
                "load_seconds": round(loaded[(s.name, s.version)].load_seconds, 2)
                if (s.name, s.version) in loaded
                else None,
                "reason": s.reason,
            }
            for s in manager.index()
        ]
    finally:
        manager.stop(drain=False, timeout=5)
    broken = [r for r in rows if r["state"] != READY]
    if args.json:
        print(json.dumps({"models": rows, "ok": not broken and bool(rows)}, indent=2))
    else:
        _print_table(rows)
    if not rows:
        print(f"no model found in {', '.join(repositories)}", file=sys.stderr)
        return EXIT_BROKEN
    for row in broken:
        where = f"{row['model']} v{row['version']}" if row["version"] else row["model"]
        print(f"broken: {where}: {row['reason'] or row['state']}", file=sys.stderr)
    return EXIT_BROKEN if broken else EXIT_OK


def _print_table(rows: list[dict[str, object]]) -> None:
    table = Table(title="batchserve validate", title_justify="left")
    for column in ("model", "version", "state", "load s", "scheduling", "reason"):
        table.add_column(column)
    for row in rows:
        state = str(row["state"])
        table.add_row(
            str(row["model"]),
            str(row["version"] or "-"),
            f"[green]{state}[/]" if state == READY else f"[bold red]{state}[/]",
            "" if row["load_seconds"] is None else f"{row['load_seconds']:.2f}",
            str(row["scheduling"] or ""),
            str(row["reason"] or ""),
        )
    Console().print(table)
