"""List, load and unload models on a running server, through its repository API.

    batchserve models list
    batchserve models load NAME
    batchserve models unload NAME

against http://127.0.0.1:8000 unless --url says otherwise; --token (or
$BATCHSERVE_AUTH_TOKEN) when the server asks for one.
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx

#: A load may download and profile a model: wait for it longer than for an inference.
TIMEOUT_S = 180.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "load", "unload"))
    parser.add_argument("name", nargs="?", help="the model, for load and unload")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server")
    parser.add_argument(
        "--token",
        default=os.environ.get("BATCHSERVE_AUTH_TOKEN"),
        help="bearer token (default: $BATCHSERVE_AUTH_TOKEN)",
    )
    parser.add_argument("--ready", action="store_true", help="list: only READY versions")


def run(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.name:
        print(f"batchserve models {args.action}: which model? (NAME)", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    base = args.url.rstrip("/")
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT_S) as client:
            if args.action == "list":
                body = {"ready": True} if args.ready else {}
                response = client.post("/v2/repository/index", json=body)
            else:
                response = client.post(f"/v2/repository/models/{args.name}/{args.action}")
    except httpx.HTTPError as exc:
        print(f"cannot reach {base}: {exc}", file=sys.stderr)
        return 2
    if response.status_code != 200:
        print(f"{response.status_code}: {_error(response)}", file=sys.stderr)
        return 1
    if args.action == "list":
        print(format_index(response.json()))
    else:
        print(f"{args.name}: {args.action}ed")
    return 0


def format_index(entries: list[dict[str, str]]) -> str:
    """The index as a table: name, version, state, reason."""
    rows = [("MODEL", "VERSION", "STATE", "REASON")]
    rows += [(e["name"], e.get("version", ""), e["state"], e.get("reason", "")) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + ("  " + row[3] if row[3] else "")
        for row in rows
    ).rstrip()


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text
