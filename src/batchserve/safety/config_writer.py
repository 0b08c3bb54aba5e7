"""`batchserve check --write`: put the verdict into model.yaml and keep the rest of the file.

The few keys are edited in the text, so comments and layout survive; the result is
parsed back and must equal the intended data, else the file is rewritten from the
data (and the caller is told that comments were lost). Nothing changes silently:
every change comes back as a line to print.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from batchserve.config import ModelConfig
from batchserve.errors import ConfigError
from batchserve.safety.verdict import SafetyReport

KeyPath = tuple[str, ...]


def verdict_settings(report: SafetyReport, config: ModelConfig) -> dict[KeyPath, object]:
    """The model.yaml values the verdict implies.

    A stateful model gets only `concurrency_safe: false`: no scheduler serves it
    correctly. A model configured for the dynamic batcher keeps that choice.
    """
    settings: dict[KeyPath, object] = {("concurrency_safe",): report.concurrency_safe}
    if report.verdict != "stateful" and config.scheduler.kind != "batch":
        settings[("scheduler", "kind")] = report.verdict
        settings[("scheduler", "instances")] = report.instances
    return settings


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _replace_value(line: str, prefix_len: int, value: str) -> str:
    """`key: old  # note` -> `key: value  # note`: an end-of-line comment stays."""
    rest = line[prefix_len:].rstrip("\r\n")
    comment = re.search(r"\s#", rest)
    tail = rest[comment.start() :] if comment else ""
    newline = "\n" if line.endswith("\n") else ""
    return f"{line[:prefix_len]} {value}{tail}{newline}"


def _set_in_text(lines: list[str], path: KeyPath, value: str) -> bool:
    """Edit one top-level or one-level-nested key in place; False where the layout is unusual."""
    if len(path) == 1:
        pattern = re.compile(rf"^{re.escape(path[0])}\s*:")
        for i, line in enumerate(lines):
            if match := pattern.match(line):
                lines[i] = _replace_value(line, match.end(), value)
                return True
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{path[0]}: {value}\n")
        return True
    if len(path) != 2:
        return False
    parent, key = path
    header = re.compile(rf"^{re.escape(parent)}\s*:(.*)$")
    for i, line in enumerate(lines):
        match = header.match(line.rstrip("\r\n"))
        if not match:
            continue
        if match.group(1).strip() and not match.group(1).strip().startswith("#"):
            return False  # flow style or a scalar: let the fallback rewrite it
        block_end = i + 1
        while block_end < len(lines) and (
            not lines[block_end].strip()
            or lines[block_end].lstrip().startswith("#")
            or lines[block_end][0] in " \t"
        ):
            block_end += 1
        children = [ln for ln in lines[i + 1 : block_end] if ln.strip() and ln.strip()[0] != "#"]
        indent = re.match(r"[ \t]*", children[0]).group(0) if children else "  "  # type: ignore[union-attr]
        child = re.compile(rf"^{re.escape(indent)}{re.escape(key)}\s*:")
        for j in range(i + 1, block_end):
            if child_match := child.match(lines[j]):
                lines[j] = _replace_value(lines[j], child_match.end(), value)
                return True
        lines.insert(i + 1, f"{indent}{key}: {value}\n")
        return True
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.append(f"{parent}:\n  {key}: {value}\n")
    return True


def write_verdict(path: Path, report: SafetyReport) -> list[str]:
    """Write the verdict into the model.yaml at `path`; returns one line per change made."""
    text = path.read_text() if path.exists() else ""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        config = ModelConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: does not validate, so it is left alone: {exc}") from exc

    wanted = copy.deepcopy(raw)
    changes: list[str] = []
    lines = text.splitlines(keepends=True)
    in_place = True
    for key_path, value in verdict_settings(report, config).items():
        node = wanted
        for part in key_path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if key_path[-1] in node:
            old = node[key_path[-1]]
            if old == value and type(old) is type(value):
                continue
            was = _scalar(old)
        else:
            default = functools.reduce(getattr, key_path, config)
            was = "(unset)" if default is None else f"{_scalar(default)} (default)"
        node[key_path[-1]] = value
        changes.append(f"{'.'.join(key_path)}: {was} -> {_scalar(value)}")
        in_place = in_place and _set_in_text(lines, key_path, _scalar(value))
    if not changes:
        return []
    ModelConfig.model_validate(wanted)  # the verdict's values are valid by construction

    new_text = "".join(lines) if in_place else ""
    if not in_place or yaml.safe_load(new_text) != wanted:
        new_text = yaml.safe_dump(wanted, sort_keys=False)
        if text.strip():
            changes.append("(the file was rewritten from its data: its comments were not kept)")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new_text)
    os.replace(tmp, path)
    return changes
