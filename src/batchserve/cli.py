"""The `batchserve` command: serve, check, predict, bench, models.

Each subcommand lives in the layer it belongs to, as a module with
`add_arguments(parser)` and `run(args) -> int`; this file only wires them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module holding add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": ("batchserve.safety.command", "may one instance of a model serve many threads?"),
    "predict": ("batchserve.offline", "offline static batching over a folder of images"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchserve", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sp)
        sp.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
