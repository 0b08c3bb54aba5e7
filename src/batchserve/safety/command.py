"""May one instance of a model serve many threads at once? Answered by analysis, not guess.

Loads the model as serving would, then looks for layers left in training mode,
state that forward writes, outputs that differ for the same input, and calls that
interfere when made from many threads at once. Prints a verdict: `shared`,
`pool(N)` or `stateful: fix the model`, with the reasons. `--write` puts it into
model.yaml. Exit status: 0 shared or pool, 1 stateful, 2 the model or the
arguments could not be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from batchserve import flags
from batchserve.errors import BatchserveError, ModelLoadError
from batchserve.repository.loader import (
    artifact_path,
    read_config,
    runtime_options,
    weights_bytes,
)
from batchserve.repository.local_store import LocalStore
from batchserve.runtimes import ModelInstance, Runtime, RuntimeOptions, get_runtime
from batchserve.runtimes.registry import runtime_for_artifact
from batchserve.safety.analysis import (
    DEFAULT_ITERATIONS,
    DEFAULT_MEMORY_BUDGET,
    DEFAULT_THREADS,
    analyse,
)
from batchserve.safety.config_writer import write_verdict
from batchserve.safety.inputs import InputShapeError, parse_shape_arguments, resolve_input_shapes
from batchserve.safety.verdict import SafetyReport
from batchserve.units import format_size

EXIT_OK, EXIT_STATEFUL, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, help="a model folder (model.yaml + numbered versions) or an artifact"
    )
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="[NAME=]1,3,224,224",
        help="shape to feed (repeat with NAME= for several inputs); default: the model's own, "
        "batch 1",
    )
    parser.add_argument(
        "--threads", type=flags.positive_int, default=DEFAULT_THREADS, help="race test threads"
    )
    parser.add_argument(
        "--iterations",
        type=flags.positive_int,
        default=DEFAULT_ITERATIONS,
        help="race test calls per thread",
    )
    parser.add_argument(
        "--memory-budget",
        type=flags.size,
        default=DEFAULT_MEMORY_BUDGET,
        metavar="SIZE",
        help="memory for a pool's instances, e.g. 400MB or 2GB (default 2GB)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--write", action="store_true", help="write the verdict into model.yaml")
    parser.add_argument(
        "--torch-module", help="'package.module:Class' for a bare .safetensors or state_dict file"
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="a bare .pth/.bin file may unpickle Python objects (only for files you trust)",
    )


@dataclass(frozen=True)
class CheckTarget:
    """What to load and how, and the model.yaml that `--write` updates (None: a bare file)."""

    runtime: Runtime
    artifact: Path
    options: RuntimeOptions
    config_path: Path | None

    @property
    def backend(self) -> str:
        return self.runtime.name


def resolve_target(path: Path, torch_module: str | None, allow_pickle: bool) -> CheckTarget:
    """A model folder's newest version as its model.yaml says, or a bare artifact file."""
    if path.is_dir() and (path / "model.yaml").is_file():
        store = LocalStore(path.parent)
        versions = store.list_versions(path.name)
        if not versions:
            raise ModelLoadError(f"{path}: no numbered version folder (1/, 2/, ...)")
        config_path = path / "model.yaml"
        config = read_config(config_path)
        runtime = get_runtime(config.backend)
        artifact = artifact_path(config, runtime, store.fetch(path.name, versions[-1]))
        if not artifact.exists():
            raise ModelLoadError(f"{artifact} does not exist")
        if torch_module and torch_module != config.options.get("module"):
            raise ModelLoadError(
                f"--torch-module differs from the module in {config_path}'s options; set it there"
            )
        if allow_pickle and not config.allow_pickle:
            raise ModelLoadError(f"--allow-pickle: set `allow_pickle: true` in {config_path}")
        options = runtime_options(config, runtime, None, path)
        return CheckTarget(runtime, artifact, options, config_path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or folder")
    runtime = runtime_for_artifact(path)
    if runtime is None:
        if path.is_dir():
            raise ModelLoadError(f"{path}: a model folder needs a model.yaml; or pass the artifact")
        raise ModelLoadError(
            f"{path}: no installed backend recognises {path.suffix or 'this file'!r}; "
            "pass a model folder whose model.yaml names the backend"
        )
    raw = {"module": torch_module} if torch_module else {}
    options = RuntimeOptions(allow_pickle=allow_pickle, options=runtime.parse_options(raw))
    return CheckTarget(runtime, path, options, None)


def run(args: argparse.Namespace) -> int:
    try:
        target = resolve_target(args.model, args.torch_module, args.allow_pickle)
        if args.write and target.config_path is None:
            raise ModelLoadError("--write needs a model folder with a model.yaml, not a bare file")
        shapes_given = parse_shape_arguments(args.input_shape)
        instance = target.runtime.load(target.artifact, target.options)
        try:
            shapes = _input_shapes(instance, shapes_given)
            report = analyse(
                instance,
                shapes,
                threads=args.threads,
                iterations=args.iterations,
                memory_budget=args.memory_budget,
                artifact_bytes=weights_bytes(target.artifact),
            )
        finally:
            instance.close()
        written = write_verdict(target.config_path, report) if args.write else []
    except (BatchserveError, InputShapeError) as exc:
        print(f"batchserve check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        document = {
            "model": str(args.model),
            "artifact": str(target.artifact),
            "backend": target.backend,
            "input_shapes": (
                None if shapes is None else {name: list(s) for name, s in shapes.items()}
            ),
            "inputs": "random" if shapes is not None else "the model's example(seed)",
            "threads": args.threads,
            "iterations": args.iterations,
            **report.to_json(),
            "written": written,
        }
        print(json.dumps(document, indent=2))
    else:
        _print_report(report, target, shapes, written)
    return EXIT_STATEFUL if report.verdict == "stateful" else EXIT_OK


def _input_shapes(
    instance: ModelInstance, given: dict[str | None, tuple[int, ...]]
) -> dict[str, tuple[int, ...]] | None:
    """The shapes of the random inputs to feed; None: the model's own examples (a Python
    model's `example(seed)`), which are used unless `--input-shape` asks for random ones."""
    if not given and instance.example_request(0) is not None:
        return None
    if instance.batch_format == "list" and not instance.inputs:
        raise InputShapeError(
            "the model declares no inputs and has no example(seed) method: give its class "
            "one, or declare `inputs`, so the check has something to feed it"
        )
    try:
        return resolve_input_shapes(instance, given)
    except InputShapeError as exc:
        if instance.batch_format != "list":
            raise
        raise InputShapeError(f"{exc}; or give the model's class an example(seed) method") from None


_STATUS_STYLE = {
    "pass": "[green]pass[/]",
    "fail": "[bold red]FAIL[/]",
    "warn": "[yellow]note[/]",
    "skipped": "[dim]skipped[/]",
}
_VERDICT_STYLE = {"shared": "bold green", "pool": "bold yellow", "stateful": "bold red"}


def _print_report(
    report: SafetyReport,
    target: CheckTarget,
    shapes: dict[str, tuple[int, ...]] | None,
    written: list[str],
) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if shapes is None:
        fed = "the model's example(seed)"
    else:
        fed = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
    table = Table(title=f"batchserve check {escape(str(target.artifact))}  (inputs: {fed})")
    table.add_column("check")
    table.add_column("result")
    table.add_column("finding")
    for finding in report.findings:
        table.add_row(finding.title, _STATUS_STYLE[finding.status], escape(finding.summary))
    console.print(table)
    memory = report.memory
    console.print(
        f"memory per instance: {format_size(memory.per_instance_bytes)} "
        f"(weights {format_size(memory.weights_bytes)}, activations "
        f"{format_size(memory.activation_bytes)}); budget {format_size(report.memory_budget)}"
    )
    style = _VERDICT_STYLE[report.verdict]
    console.print(f"\nverdict: [{style}]{escape(report.verdict_line)}[/]")
    for reason in report.reasons:
        console.print(f"  - {escape(reason)}")
    if written:
        console.print(f"\nwrote {escape(str(target.config_path))}:")
        for line in written:
            console.print(f"  {escape(line)}")
