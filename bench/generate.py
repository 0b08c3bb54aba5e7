"""Text benchmark: continuous batching vs request-level batching vs one at a time, and
embeddings batched vs unbatched, in-process, in one run.

Generation: the shipped docgen model (models/docgen) behind a `ContinuousBatcher` in
three modes over the same single-threaded ONNX Runtime session:

- continuous: sequences join and leave the running batch at every step (max 32);
- request:    request-level dynamic batching: whatever waits when the batch is empty
              is admitted together and no one joins until all have finished (max 32);
              members still answer one by one as they finish (kind to this baseline);
- one:        one request at a time (max 1).

`clients` threads (1, 8, 32) each send requests back to back. Prompts and output
lengths are mixed and heavy-tailed, as real generation traffic is: prompts of 4-200
bytes; outputs of 8-32 tokens (70 %), 64-128 (20 %) and 256-512 (10 %), generated
to exactly that length (`ignore_eos`). Every client draws the same sequence from its
own seeded generator, so all modes see the same requests. Tokens/s counts tokens
emitted inside the measuring window (timestamped as they are emitted); time to
first token (TTFT, from submission) is taken over the requests submitted in it.
Tokens per CPU-second divides by this process's CPU time in the window instead of
wall time: on a shared machine it does not move with other jobs' load.

Embeddings: all-MiniLM-L6-v2 (models-text/minilm, `make text-models`) behind a
`DynamicBatcher` with length-bucketed padding (max 32), against the same layout with
batches of 1 (one 2-thread session) and two 1-thread workers with batches of 1; 32
clients each embed one sentence at a time; sentences are stdlib docstring lines of
2-60 tokens.

Run from the repository root::

    .venv/bin/python bench/generate.py [--duration 5] [--out bench-results/generate.json]

Targets: continuous >= 2x request-level tokens/s at 32 clients, and its TTFT not
growing with the longest request in flight (p99 TTFT far below the longest request).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from batchserve.codecs.text import EmbeddingCodec
from batchserve.config import load_model_config
from batchserve.runtimes import RuntimeOptions, load_instance
from batchserve.runtimes.step_model import StepModel
from batchserve.scheduling.batching import Padding
from batchserve.scheduling.continuous_batcher import ContinuousBatcher, GenerationResult
from batchserve.scheduling.dynamic_batcher import DynamicBatcher
from batchserve.scheduling.sampling import SamplingParams

ROOT = Path(__file__).resolve().parent.parent
DOCGEN = ROOT / "models" / "docgen"
MINILM = ROOT / "models-text" / "minilm"
CLIENTS = (1, 8, 32)
MODES = {"continuous": ("continuous", 32), "request": ("request", 32), "one": ("continuous", 1)}
#: Longest a warm-up waits for every client's first answer.
WARMUP_CAP_S = 60.0


@dataclass(frozen=True)
class GenerationCell:
    mode: str
    clients: int
    tokens_per_s: float
    tokens_per_cpu_s: float  # per second of this process's CPU time: load-independent
    requests: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    ttft_max_ms: float
    longest_request_ms: float
    mean_batch: float


@dataclass(frozen=True)
class EmbeddingCell:
    mode: str
    clients: int
    sentences_per_s: float
    sentences_per_cpu_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: float


def workload(seed: int, count: int = 10_000) -> list[tuple[list[int], int]]:
    """(prompt tokens, output tokens) pairs: mixed, heavy-tailed, reproducible."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz   ._(),", np.uint8)
    cases = []
    for _ in range(count):
        prompt = rng.choice(letters, size=int(rng.integers(4, 201))).tolist()
        kind = rng.random()
        if kind < 0.7:
            n = int(rng.integers(8, 33))
        elif kind < 0.9:
            n = int(rng.integers(64, 129))
        else:
            n = int(rng.integers(256, 513))
        cases.append((prompt, n))
    return cases


class Window:
    """The measuring window: opens after the warm-up, closes `duration` later."""

    def __init__(self) -> None:
        self.start = float("inf")
        self.end = float("inf")

    def inside(self, t: float) -> bool:
        return self.start <= t < self.end


def run_generation(mode: str, clients: int, duration: float, warmup: float) -> GenerationCell:
    policy, max_batch = MODES[mode]
    instance = load_instance(
        "onnx", DOCGEN / "1" / "model.onnx", RuntimeOptions(intra_op_threads=1)
    )
    config = load_model_config(DOCGEN / "model.yaml").generate
    assert config is not None
    steps: list[int] = []
    batcher = ContinuousBatcher(
        StepModel(instance, eos_token=config.eos_token, bos_token=config.bos_token),
        max_batch_size=max_batch,
        max_queue=1024,
        policy=policy,  # type: ignore[arg-type]
        on_step=lambda rows, s: steps.append(rows),
    )
    batcher.start()
    window = Window()
    emitted = [0]  # tokens emitted inside the window; written by the loop thread only
    lock = threading.Lock()
    ttfts: list[float] = []
    totals: list[float] = []
    warm = threading.Semaphore(0)

    def on_token(_: int) -> None:
        if window.inside(time.perf_counter()):
            emitted[0] += 1

    def client(i: int) -> None:
        cases = workload(1000 + i)
        first = True
        for prompt, n in cases:
            if time.perf_counter() >= window.end:
                return
            submitted = time.perf_counter()
            handle = batcher.generate(
                prompt, SamplingParams(max_tokens=n, ignore_eos=True), on_token=on_token
            )
            result: GenerationResult = handle.result(timeout=600)
            if first:
                warm.release()
                first = False
            if window.inside(submitted) and result.first_token_s is not None:
                with lock:
                    ttfts.append(result.first_token_s)
                    totals.append(result.total_s)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    cap = time.perf_counter() + WARMUP_CAP_S
    for _ in range(clients):
        warm.acquire(timeout=max(0.0, cap - time.perf_counter()))
    steps.clear()
    cpu = time.process_time()
    window.start = time.perf_counter()
    window.end = window.start + duration
    time.sleep(duration)
    counted = emitted[0]
    cpu = time.process_time() - cpu
    for t in threads:
        t.join(600)
    batcher.stop(drain=False, timeout=5)
    ms = np.array(ttfts) * 1000 if ttfts else np.array([np.nan])
    return GenerationCell(
        mode=mode,
        clients=clients,
        tokens_per_s=counted / duration,
        tokens_per_cpu_s=counted / max(cpu, 1e-9),
        requests=len(ttfts),
        ttft_p50_ms=float(np.percentile(ms, 50)),
        ttft_p99_ms=float(np.percentile(ms, 99)),
        ttft_max_ms=float(ms.max()),
        longest_request_ms=float(max(totals, default=0.0) * 1000),
        mean_batch=float(np.mean(steps)) if steps else 0.0,
    )


def sentences() -> list[str]:
    """First lines of stdlib docstrings: real sentences of 2-60 tokens."""
    sys.path.insert(0, str(ROOT / "tools"))
    from docgen import stdlib_documents

    lines = []
    for document in stdlib_documents():
        first = document.text.split("\n")[1:2]
        if first and 10 <= len(first[0]) <= 300:
            lines.append(first[0])
    rng = np.random.default_rng(0)
    rng.shuffle(lines)
    return lines[:4000]


def run_embedding(
    mode: str, texts: list[str], clients: int, duration: float, warmup: float
) -> EmbeddingCell:
    config = load_model_config(MINILM / "model.yaml")
    assert config.embed is not None
    codec = EmbeddingCodec(config.embed, MINILM)
    requests = [codec.encode([t])[0] for t in texts]
    path = MINILM / "1" / "model.onnx"
    if mode == "batched":
        instances = [load_instance("onnx", path, RuntimeOptions(intra_op_threads=2))]
        max_batch = 32
    elif mode == "unbatched 1x2 threads":
        instances = [load_instance("onnx", path, RuntimeOptions(intra_op_threads=2))]
        max_batch = 1
    else:
        one = load_instance("onnx", path, RuntimeOptions(intra_op_threads=1))
        instances, max_batch = [one, one], 1
    batches: list[int] = []
    padding = Padding(axes={"input_ids": (1,), "attention_mask": (1,)}, bucket=16)
    batcher = DynamicBatcher(
        instances,
        max_batch_size=max_batch,
        max_queue=1024,
        padding=padding,
        on_batch=lambda rows, s: batches.append(rows),
    )
    batcher.start()
    window = Window()
    done = [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def client(i: int) -> None:
        k = i
        while time.perf_counter() < window.end:
            t0 = time.perf_counter()
            batcher.submit(requests[k % len(requests)]).result(timeout=60)
            t1 = time.perf_counter()
            if window.inside(t1):
                done[i] += 1
                latencies[i].append(t1 - t0)
            k += clients

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    batches.clear()
    cpu = time.process_time()
    window.start = time.perf_counter()
    window.end = window.start + duration
    time.sleep(duration)
    cpu = time.process_time() - cpu
    for t in threads:
        t.join(120)
    batcher.stop(drain=False, timeout=5)
    ms = np.array([x for per in latencies for x in per]) * 1000
    return EmbeddingCell(
        mode=mode,
        clients=clients,
        sentences_per_s=sum(done) / duration,
        sentences_per_cpu_s=sum(done) / max(cpu, 1e-9),
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_batch=float(np.mean(batches)) if batches else 0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "generate.json")
    parser.add_argument("--skip-embeddings", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds for the ratio")
    args = parser.parse_args()
    console = Console()
    console.print(
        f"[bold]text bench[/bold]: {platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.1f}; "
        f"{args.duration:g} s per cell"
    )

    generation: list[GenerationCell] = []
    for clients in CLIENTS:
        for mode in MODES:
            cell = run_generation(mode, clients, args.duration, args.warmup)
            generation.append(cell)
            console.print(f"  generate {mode:>10} x{clients:<2} {cell.tokens_per_s:8.0f} tok/s")
    table = Table(title="generation (docgen GRU, mixed heavy-tailed lengths)")
    for col in ("clients", "mode", "tokens/s", "tok/CPU-s", "TTFT p50 ms", "TTFT p99 ms",
                "longest req ms", "mean batch", "requests"):  # fmt: skip
        table.add_column(col, justify="right")
    for c in generation:
        table.add_row(
            str(c.clients), c.mode, f"{c.tokens_per_s:.0f}", f"{c.tokens_per_cpu_s:.0f}",
            f"{c.ttft_p50_ms:.1f}",
            f"{c.ttft_p99_ms:.1f}", f"{c.longest_request_ms:.0f}", f"{c.mean_batch:.1f}",
            str(c.requests),
        )  # fmt: skip
    console.print(table)

    def tps(mode: str, clients: int) -> float:
        return next(c.tokens_per_s for c in generation if c.mode == mode and c.clients == clients)

    # The target ratio again in paired rounds (c, r, then r, c, ...), judged on the
    # median: background load drifting during the run falls on both sides alike.
    ratios, cpu_ratios = [], []
    for round_ in range(args.rounds):
        order = ("continuous", "request") if round_ % 2 == 0 else ("request", "continuous")
        got = {m: run_generation(m, 32, args.duration, args.warmup) for m in order}
        c, r = got["continuous"], got["request"]
        ratios.append(c.tokens_per_s / max(r.tokens_per_s, 1e-9))
        cpu_ratios.append(c.tokens_per_cpu_s / max(r.tokens_per_cpu_s, 1e-9))
    ratio = float(np.median(ratios)) if ratios else tps("continuous", 32) / tps("request", 32)
    console.print(
        f"continuous / request-level tokens/s at 32 clients: [bold]{ratio:.2f}x[/bold] "
        f"(median of {len(ratios)} paired rounds: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"target >= 2x); continuous / one at a time: "
        f"{tps('continuous', 32) / max(tps('one', 32), 1e-9):.2f}x"
    )
    if cpu_ratios:
        console.print(
            f"per CPU-second (load-independent): {float(np.median(cpu_ratios)):.2f}x "
            f"({', '.join(f'{r:.2f}' for r in cpu_ratios)})"
        )

    embedding: list[EmbeddingCell] = []
    if not args.skip_embeddings:
        texts = sentences()
        for mode in ("batched", "unbatched 1x2 threads", "unbatched 2x1 thread"):
            embedding.append(run_embedding(mode, texts, 32, args.duration, args.warmup))
        table = Table(title="embeddings (all-MiniLM-L6-v2, 32 clients, one sentence each)")
        for col in ("mode", "sentences/s", "sent/CPU-s", "p50 ms", "p99 ms", "mean batch"):
            table.add_column(col, justify="right")
        for e in embedding:
            table.add_row(
                e.mode, f"{e.sentences_per_s:.0f}", f"{e.sentences_per_cpu_s:.0f}",
                f"{e.p50_ms:.1f}", f"{e.p99_ms:.1f}",
                f"{e.mean_batch:.1f}",
            )  # fmt: skip
        console.print(table)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": {
                    "cores": len(os.sched_getaffinity(0)),
                    "python": sys.version.split()[0],
                },
                "duration_s": args.duration,
                "generation": [asdict(c) for c in generation],
                "continuous_over_request_tokens_per_s_at_32": ratio,
                "paired_round_ratios": ratios,
                "paired_round_cpu_ratios": cpu_ratios,
                "embeddings": [asdict(e) for e in embedding],
            },
            indent=2,
        )
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
