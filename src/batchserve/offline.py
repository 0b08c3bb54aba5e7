"""Offline prediction: classify a folder of images in static batches.

Decoding runs on a pool of threads while earlier batches run on the model,
so both cores stay busy; results come out in input order. An unreadable file
gets one line on stderr and is skipped; the run goes on.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from batchserve.codecs.classifier import ImageClassifier
from batchserve.errors import BatchserveError
from batchserve.repository.bundled import bundled_repositories
from batchserve.repository.loaded_model import InferenceResult, LoadedModel
from batchserve.repository.local_store import LocalStore
from batchserve.repository.manager import ModelManager

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    parser.add_argument("--model", required=True, help="model name in the repository")
    parser.add_argument("--version", type=int, default=None, help="default: the newest")
    parser.add_argument(
        "--repository",
        action="append",
        type=Path,
        help="model repository folder (repeatable); default: the bundled demo models",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--decode-threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="JSON lines; default stdout")


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    files = list(find_images(args.inputs))
    if not files:
        console.print("[red]no images found[/red] in " + " ".join(args.inputs))
        return 2
    stores = [LocalStore(p) for p in (args.repository or bundled_repositories())]
    manager = ModelManager(stores)
    try:
        store = next(s for s in stores if args.model in s.list_models())
    except StopIteration:
        console.print(f"[red]model {args.model!r} not found[/red] in {stores}")
        return 2
    manager.load(args.model, store)
    try:
        model = manager.get(args.model, args.version)
    except BatchserveError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    out = args.out.open("w") if args.out else sys.stdout
    try:
        stats = predict_files(
            model, files, args.batch_size, args.top_k, args.decode_threads, out, console
        )
    finally:
        if args.out:
            out.close()
        manager.stop()
    console.print(
        f"{stats.done} images in {stats.seconds:.1f} s ({stats.done / stats.seconds:.1f} img/s), "
        f"{stats.skipped} skipped"
    )
    return 0


@dataclass
class RunStats:
    """What an offline run did: images predicted, files skipped, seconds taken."""

    done: int = 0
    skipped: int = 0
    seconds: float = 0.0


def find_images(patterns: Iterable[str]) -> Iterator[Path]:
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            yield path
        else:
            yield from sorted(Path(p) for p in glob.glob(pattern, recursive=True))


def predict_files(
    model: LoadedModel,
    files: list[Path],
    batch_size: int,
    top_k: int,
    decode_threads: int,
    out,
    console: Console,
) -> RunStats:
    codec = model.codec.predict
    if not isinstance(codec, ImageClassifier):
        raise BatchserveError(f"model {model.name} has no image preprocessing in its model.yaml")
    stats = RunStats()
    started = time.monotonic()

    def decode(path: Path) -> np.ndarray | str:
        try:
            return codec.image.decode(path.read_bytes())
        except (BatchserveError, OSError) as exc:
            return str(exc)

    # Batches in flight on the model, oldest first: (files, future) for writing in order.
    in_flight: deque[tuple[list[Path], Future[InferenceResult]]] = deque()

    def finish_oldest() -> None:
        paths, future = in_flight.popleft()
        predictions = codec.predictions(future.result().outputs, top_k)
        for path, labels in zip(paths, predictions, strict=True):
            out.write(json.dumps({"file": str(path), "top_k": labels}))
            out.write("\n")
        stats.done += len(paths)
        elapsed = time.monotonic() - started
        progress.update(task, advance=len(paths), rate=stats.done / elapsed if elapsed else 0.0)

    columns = (
        TextColumn("[bold]predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} img/s"),
        TimeRemainingColumn(),
    )
    with (
        Progress(*columns, console=console) as progress,
        ThreadPoolExecutor(decode_threads) as pool,
    ):
        task = progress.add_task("predict", total=len(files), rate=0.0)
        decoded = _bounded_map(pool, decode, files, lookahead=2 * batch_size)
        batch_paths: list[Path] = []
        batch_tensors: list[np.ndarray] = []
        for path, tensor in decoded:
            if isinstance(tensor, str):
                console.print(f"[yellow]skipped[/yellow] {path}: {tensor}")
                stats.skipped += 1
                progress.update(task, advance=1)
                continue
            batch_paths.append(path)
            batch_tensors.append(tensor)
            if len(batch_paths) == batch_size:
                in_flight.append((batch_paths, _submit(model, codec, batch_tensors)))
                batch_paths, batch_tensors = [], []
                while len(in_flight) > 2:
                    finish_oldest()
        if batch_paths:
            in_flight.append((batch_paths, _submit(model, codec, batch_tensors)))
        while in_flight:
            finish_oldest()
    stats.seconds = time.monotonic() - started
    return stats


def _submit(
    model: LoadedModel, codec: ImageClassifier, tensors: list[np.ndarray]
) -> Future[InferenceResult]:
    return model.submit({codec.input_name: np.concatenate(tensors)})


def _bounded_map(pool: ThreadPoolExecutor, fn, items: list[Path], lookahead: int):
    """Like pool.map, in order, but never more than `lookahead` items decoded ahead."""
    pending: deque[tuple[Path, Future]] = deque()
    it = iter(items)
    for item in it:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) >= lookahead:
            break
    while pending:
        item, future = pending.popleft()
        nxt = next(it, None)
        if nxt is not None:
            pending.append((nxt, pool.submit(fn, nxt)))
        yield item, future.result()
