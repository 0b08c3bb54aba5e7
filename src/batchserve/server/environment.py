"""Every `serve` flag from an environment variable, as platforms configure a process.

`--auth-token` is `BATCHSERVE_AUTH_TOKEN`, `--max-body-mb` is `BATCHSERVE_MAX_BODY_MB`:
the flag's name in capitals with `BATCHSERVE_` before it. Flags given on the command
line win over the environment, and the environment over the defaults. `PORT`, which
PaaS platforms set, is honoured as the port when `BATCHSERVE_PORT` is not set.

Values are parsed by the flag's own parser, so a bad value is refused at start with
the variable named; so is an empty one (an empty `BATCHSERVE_AUTH_TOKEN` must not
quietly switch authentication off), and so is a `BATCHSERVE_*` variable that names no
flag (a typo would otherwise be ignored). Flags that may repeat (`--repository`) take
a comma-separated list; switches take true/false, yes/no, on/off or 1/0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from batchserve.machine import CPUS_ENV

PREFIX = "BATCHSERVE_"
#: Set by PaaS platforms (Heroku, Render, Cloud Run...): the port to listen on.
PLATFORM_PORT = "PORT"
#: Variables batchserve reads that are not `serve` flags.
OTHER_VARIABLES = {
    "BATCHSERVE_CACHE_DIR": "where layout profiles and downloaded S3 versions are cached",
    CPUS_ENV: "cores this process counts as its own (a container or replica's share)",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class BadEnvironment(ValueError):
    """A variable that cannot be used; the message names it."""


@dataclass(frozen=True)
class EnvFlag:
    """One flag and the variable that sets it."""

    variable: str
    flag: str
    action: argparse.Action

    @property
    def help(self) -> str:
        return self.action.help or ""


def env_flags(parser: argparse.ArgumentParser) -> list[EnvFlag]:
    """The parser's long flags and their variables, in the parser's order."""
    found = []
    # argparse has no public way to list a parser's arguments; `_actions` is the list
    # `add_argument` appends to, stable across Python versions.
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or isinstance(action, argparse._HelpAction):
            continue
        flag = longs[0]
        variable = PREFIX + flag[2:].replace("-", "_").upper()
        if variable in OTHER_VARIABLES:  # --cache-dir: BATCHSERVE_CACHE_DIR is the root of it
            continue
        found.append(EnvFlag(variable, flag, action))
    return found


def defaults_from_environment(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> dict[str, object]:
    """Parsed defaults for `parser.set_defaults`, from `environ` (default: os.environ).

    Raises `BadEnvironment` naming the variable for an unknown, empty or bad one.
    """
    environ = os.environ if environ is None else environ
    flags = env_flags(parser)
    by_variable = {f.variable: f for f in flags}
    unknown = sorted(
        name
        for name in environ
        if name.startswith(PREFIX) and name not in by_variable and name not in OTHER_VARIABLES
    )
    if unknown:
        known = ", ".join(sorted([*by_variable, *OTHER_VARIABLES]))
        raise BadEnvironment(
            f"unknown environment variable {', '.join(unknown)}; batchserve reads {known}"
        )
    defaults: dict[str, object] = {}
    for name, entry in by_variable.items():
        value = environ.get(name)
        if value is None and name == PREFIX + "PORT":
            name, value = PLATFORM_PORT, environ.get(PLATFORM_PORT)
        if value is None:
            continue
        with _naming(name, value):
            defaults[entry.action.dest] = _parse(entry.action, value)
    return defaults


@contextlib.contextmanager
def _naming(name: str, value: str) -> Iterator[None]:
    try:
        yield
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        raise BadEnvironment(f"environment variable {name}={value!r}: {exc}") from None


def _parse(action: argparse.Action, value: str) -> object:
    if not value.strip():
        raise ValueError("is set but empty; give a value, or unset it for the default")
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        word = value.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError("expected true or false (yes/no, on/off, 1/0)")
        on = word in _TRUE
        return on if isinstance(action, argparse._StoreTrueAction) else not on
    if isinstance(action, argparse._AppendAction):
        return [_convert(action, part.strip()) for part in value.split(",") if part.strip()]
    return _convert(action, value)


def _convert(action: argparse.Action, text: str) -> object:
    converted = action.type(text) if callable(action.type) else text
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
    return converted


class Repeatable(argparse._AppendAction):
    """`action="append"` whose first use on the command line replaces the default (which
    may come from the environment) instead of adding to it: flags win."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, None) is self.default:
            setattr(namespace, self.dest, [])
        super().__call__(parser, namespace, values, option_string)


def from_environment(parser: argparse.ArgumentParser) -> None:
    """Take the parser's defaults from the environment and name each flag's variable in
    its help; an unusable variable ends the program with one line naming it."""
    for entry in env_flags(parser):
        entry.action.help = f"{entry.help} [{entry.variable}]".strip()
    try:
        parser.set_defaults(**defaults_from_environment(parser))
    except BadEnvironment as exc:
        parser.error(str(exc))
