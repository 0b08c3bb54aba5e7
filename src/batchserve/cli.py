"""The `batchserve` command: serve, validate, check, predict, bench, models.

Each subcommand lives in the layer it belongs to, as a module with
`add_arguments(parser)` and `run(args) -> int`; this file only wires them, and
imports only the module of the subcommand being run (torch stays unimported
unless `check` needs it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module holding add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("batchserve.server.command", "serve models over HTTP (v2, /predict) and gRPC (v2)"),
    "validate": (
        "batchserve.server.validate",
        "load every model of a repository as serve would; exit 1 naming each broken one",
    ),
    "check": ("batchserve.safety.command", "may one instance of a model serve many threads?"),
    "predict": ("batchserve.offline", "offline static batching over a folder of images"),
    "bench": ("batchserve.bench.command", "load-test an HTTP endpoint: concurrency sweep or rate"),
    "models": ("batchserve.repository.command", "list, load, unload models on a running server"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchserve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            sp.description = module.__doc__
            sp.formatter_class = argparse.RawDescriptionHelpFormatter
            module.add_arguments(sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if a in SUBCOMMANDS), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
