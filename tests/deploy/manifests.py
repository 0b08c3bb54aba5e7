"""Reading the deployment files as their tools would, and running what they run on loopback."""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from batchserve.cli import build_parser
from batchserve.server.environment import OTHER_VARIABLES, env_flags
from tests.live_server import DEMO_REPOSITORY, PROJECT_ROOT, LiveServer

DEPLOY = PROJECT_ROOT / "deploy"


def parse_serve(argv: Sequence[str]) -> argparse.Namespace:
    """`batchserve ARGV` as the real CLI parses it; a bad argument fails the test."""
    argv = list(argv)
    try:
        return build_parser(argv[0]).parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"batchserve {shlex.join(argv)} does not parse") from exc


def known_variables() -> set[str]:
    parser = build_parser("serve")
    serve = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {f.variable for f in env_flags(serve.choices["serve"])} | set(OTHER_VARIABLES)


def for_loopback(argv: Sequence[str], repository: Path = DEMO_REPOSITORY) -> list[str]:
    """A `serve` command line as a test may run it: without its host and port (the test
    server binds 127.0.0.1 on a free port), gRPC on a free port too, and with a local
    repository."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("--host", "--port", "--repository") and i + 1 < len(argv):
            skip = True
            continue
        if arg == "--grpc-port" and i + 1 < len(argv):
            out += ["--grpc-port", "0"]
            skip = True
            continue
        out.append(arg)
    assert out[:1] == ["serve"], argv
    return [*out[1:], "--repository", str(repository)]


def start_like(argv: Sequence[str], env: Mapping[str, str], token: str | None = None) -> LiveServer:
    """A live server run with `argv` and `env`, made fit for loopback, with `token` if given."""
    env = {k: v for k, v in env.items() if k not in ("BATCHSERVE_REPOSITORY", "BATCHSERVE_HOST")}
    if token is not None:
        env["BATCHSERVE_AUTH_TOKEN"] = token
    server = LiveServer([], *for_loopback(argv), env=dict(env), wait_ready=False)
    server.wait_ready(90)  # no token: readiness is open to probes
    return server


@dataclass
class Dockerfile:
    """The instructions of a Dockerfile, continuation lines joined."""

    path: Path
    instructions: list[tuple[str, str]]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        joined, current = [], ""
        for line in path.read_text().splitlines():
            if line.strip().startswith("#") or not line.strip():
                continue
            current += line.rstrip("\\").strip() + " "
            if not line.rstrip().endswith("\\"):
                joined.append(current.strip())
                current = ""
        instructions = []
        for line in joined:
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
        return cls(path, instructions)

    def all(self, word: str) -> list[str]:
        return [rest for w, rest in self.instructions if w == word]

    def last(self, word: str) -> str:
        found = self.all(word)
        assert found, f"{self.path.name} has no {word}"
        return found[-1]

    def exec_form(self, word: str) -> list[str]:
        """A JSON-array instruction (ENTRYPOINT, CMD); the shell form is refused, since it
        would run the server under /bin/sh, which does not pass SIGTERM on."""
        text = self.last(word)
        if word == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1]
        value = json.loads(text)
        assert isinstance(value, list), f"{word} must be in exec form"
        return value

    def env(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for rest in self.all("ENV"):
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                found[key] = value
        return found


def yaml_documents(folder: Path) -> list[dict]:
    docs = []
    for path in sorted(folder.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs
