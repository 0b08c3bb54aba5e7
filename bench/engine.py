"""Engine benchmark: how close batchserve's schedulers come to the hardware, in-process.

Measures, in one run, on the MobileNet v1 1.0/224 benchmark model (random weights,
``make bench-model``) and one 640x480 JPEG (``samples/bench_640x480.jpg``, or a
generated one when that file is missing):

1. Raw ONNX Runtime, inference only: rows/s at batch 1-32 with one session of two
   intra-op threads (spinning on, ORT's default, and off, as batchserve sets it), and
   with two one-thread sessions driven from two threads (the ceiling).
2. Raw decode + inference: (a) the pipeline ceiling, two threads each decoding with
   batchserve's ``ImageCodec`` and running batch 1 on its own one-thread session;
   (b) one two-thread session, one image at a time, decode then infer: the
   reference latency for a lone request, with ORT's intra-op spinning on (its
   default) and off (batchserve's setting); the faster of the two is the reference.
3. batchserve: the model loaded by ``load_model_version`` with every scheduler field
   forced to ``auto`` (the profiled layout is printed), then closed-loop load from
   1, 8 and 64 submitter threads, each decoding the JPEG and waiting on
   ``submit(...).result()``; then the explicit DynamicBatcher, InstancePool and
   SharedInstance layouts under the same load.
4. The seed's approach: eager PyTorch MobileNet v1 (``tools/mobilenet_v1.py``), one
   model shared by every submitter, and a pool of two one-thread models, with the
   same decode. Each runs in its own process, since torch's thread count is per process.

Throughput is completed requests (rows) per second inside a fixed window after a
warm-up; latency is each call's wall time, decode included where stated. Every loop
is time-bounded. The layout profile runs fresh in a temporary cache directory. The two
target ratios are also measured in paired rounds (reference, candidate, then the
other way round, ...) and judged on their median, so that background load drifting
during the run falls on both sides of a ratio alike.

Run from the repository root::

    .venv/bin/python bench/engine.py [--duration 4] [--out bench-results/engine.json]

Targets: throughput at 64 submitters >= 0.95 x the pipeline ceiling (2a), and p50
latency at 1 submitter <= 1.05 x the lone-request reference (2b).
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image
from rich.console import Console
from rich.table import Table

from batchserve.codecs.images import ImageCodec
from batchserve.config import ModelConfig, SchedulerConfig, load_model_config
from batchserve.repository.loaded_model import LoadedModel
from batchserve.repository.loader import load_model_version, runtime_options
from batchserve.runtimes import ModelInstance, get_runtime, load_instance
from batchserve.scheduling.base import Scheduler
from batchserve.scheduling.factory import build_scheduler

ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "mobilenet_v1"
SAMPLE_JPEG = ROOT / "samples" / "bench_640x480.jpg"
BATCHES = (1, 2, 4, 8, 16, 32)
SUBMITTERS = (1, 8, 64)
THROUGHPUT_TARGET = 0.95  # auto layout at 64 submitters / pipeline ceiling
LATENCY_TARGET = 1.05  # auto layout p50 at 1 submitter / lone-request reference
#: Longest a warm-up waits, past its own length, for every submitter's first call.
WARMUP_CAP_S = 30.0

#: One call of a closed loop, given the submitter's index; returns the batch size the
#: scheduler ran it in, when known.
Work = Callable[[int], int | None]


@dataclass(frozen=True)
class Measurement:
    """One closed-loop step: throughput in rows/s and per-call latency."""

    label: str
    submitters: int
    rows_per_call: int
    throughput: float
    p50_ms: float
    p99_ms: float
    calls: int
    errors: int
    mean_batch: float | None = None
    first_error: str | None = None


def closed_loop(
    label: str,
    work: Work,
    *,
    submitters: int,
    duration: float,
    warmup: float,
    rows_per_call: int = 1,
) -> Measurement:
    """`submitters` threads call `work` back to back; only calls that complete inside the
    measuring window count.

    The window opens after `warmup` seconds and once every submitter has completed a
    call (at most `WARMUP_CAP_S` later), so that with many submitters the first convoy,
    all of them starting at once, is not measured; it closes `duration` seconds later
    and each thread stops at its next call.
    """
    records: list[list[tuple[float, float, int | None]]] = [[] for _ in range(submitters)]
    errors = [0] * submitters
    first_error: list[str] = []
    window = [float("inf"), float("inf")]
    warm = threading.Semaphore(0)
    start_line = threading.Barrier(submitters + 1)

    def loop(i: int) -> None:
        start_line.wait()
        first = True
        while time.perf_counter() < window[1]:
            t0 = time.perf_counter()
            try:
                batch = work(i)
            except Exception as exc:  # counted and reported, never fatal to the run
                errors[i] += 1
                if not first_error:
                    first_error.append(f"{type(exc).__name__}: {exc}")
                batch = None
            else:
                t1 = time.perf_counter()
                records[i].append((t1, t1 - t0, batch))
            if first:
                first = False
                warm.release()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(submitters)]
    for thread in threads:
        thread.start()
    start_line.wait()
    time.sleep(warmup)
    give_up = time.perf_counter() + WARMUP_CAP_S
    for _ in range(submitters):
        if not warm.acquire(timeout=max(0.0, give_up - time.perf_counter())):
            break
    begin = time.perf_counter()
    window[:] = [begin, begin + duration]
    for thread in threads:
        thread.join(timeout=duration + 120)
    kept = [(lat, b) for per in records for t1, lat, b in per if begin <= t1 <= begin + duration]
    samples = np.array([lat for lat, _ in kept]) * 1000.0
    seen = [b for _, b in kept if b is not None]
    return Measurement(
        label=label,
        submitters=submitters,
        rows_per_call=rows_per_call,
        throughput=len(samples) * rows_per_call / duration,
        p50_ms=float(np.percentile(samples, 50)) if len(samples) else float("nan"),
        p99_ms=float(np.percentile(samples, 99)) if len(samples) else float("nan"),
        calls=len(samples),
        errors=sum(errors),
        mean_batch=float(np.mean(seen)) if seen else None,
        first_error=first_error[0] if first_error else None,
    )


# -- inputs ------------------------------------------------------------------------------


def sample_jpeg(scratch: Path) -> Path:
    """The shared 640x480 sample, or a generated one (smooth noise) when it is missing."""
    if SAMPLE_JPEG.is_file():
        return SAMPLE_JPEG
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (15, 20, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((640, 480), Image.Resampling.BICUBIC)
    grain = rng.normal(0, 6, (480, 640, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
    path = scratch / "bench_640x480.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    return path


def raw_session(path: Path, threads: int, spin: bool = True) -> ort.InferenceSession:
    """A plain ONNX Runtime session: ORT's defaults but for the thread counts, and
    with `spin=False` the one setting batchserve changes for multi-thread sessions."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


# -- 1. raw ONNX Runtime -----------------------------------------------------------------


def raw_inference(artifact: Path, duration: float, warmup: float) -> list[Measurement]:
    wide_spin = raw_session(artifact, 2)
    wide_still = raw_session(artifact, 2, spin=False)
    pair = [raw_session(artifact, 1), raw_session(artifact, 1)]
    name = pair[0].get_inputs()[0].name
    rng = np.random.default_rng(0)
    results: list[Measurement] = []
    layouts = (
        ("1 session x 2 threads (spinning on, ORT default)", [wide_spin]),
        ("1 session x 2 threads (spinning off, as batchserve)", [wide_still]),
        ("2 sessions x 1 thread, from 2 threads", pair),
    )
    for label, sessions in layouts:
        for b in BATCHES:
            feed = {name: rng.standard_normal((b, 3, 224, 224)).astype(np.float32)}
            for session in sessions:
                session.run(None, feed)

            def work(
                i: int,
                sessions: list[ort.InferenceSession] = sessions,
                feed: dict[str, np.ndarray] = feed,
            ) -> None:
                sessions[i].run(None, feed)

            results.append(
                closed_loop(
                    label,
                    work,
                    submitters=len(sessions),
                    duration=duration,
                    warmup=warmup,
                    rows_per_call=b,
                )
            )
    return results


# -- 2. raw decode + inference -----------------------------------------------------------


class RawPipeline:
    """Decode + inference straight on ONNX Runtime sessions, no batchserve in between."""

    def __init__(self, artifact: Path, codec: ImageCodec, jpeg: bytes) -> None:
        self.pair = [raw_session(artifact, 1), raw_session(artifact, 1)]
        # Two-thread sessions with intra-op spinning on (ORT's default) and off (what
        # batchserve uses); `reference_spin` is set to whichever is faster here.
        self.wide = {True: raw_session(artifact, 2), False: raw_session(artifact, 2, spin=False)}
        self.reference_spin = True
        self.name = self.pair[0].get_inputs()[0].name
        self.codec, self.jpeg = codec, jpeg
        self.decoded = {self.name: codec.decode(jpeg)}
        for session in [*self.pair, *self.wide.values()]:
            session.run(None, self.decoded)

    def ceiling(self, duration: float, warmup: float) -> Measurement:
        """2a: two threads, each decoding and running batch 1 on its own 1-thread session."""

        def work(i: int) -> None:
            self.pair[i].run(None, {self.name: self.codec.decode(self.jpeg)})

        label = "2a  2 threads, own 1-thread session each, decode + b1"
        return closed_loop(label, work, submitters=2, duration=duration, warmup=warmup)

    def reference(self, duration: float, warmup: float, spin: bool | None = None) -> Measurement:
        """2b: one image at a time, decode then batch 1 on one 2-thread session."""
        spin = self.reference_spin if spin is None else spin
        session = self.wide[spin]

        def work(_: int) -> None:
            session.run(None, {self.name: self.codec.decode(self.jpeg)})

        label = f"2b  1 session x 2 threads (spinning {'on' if spin else 'off'}), decode + b1"
        return closed_loop(label, work, submitters=1, duration=duration, warmup=warmup)

    def parts(self, duration: float, warmup: float) -> dict[str, Measurement]:
        """Decode alone and inference alone, to see where a request's time goes."""

        def decode_only(_: int) -> None:
            self.codec.decode(self.jpeg)

        def infer_only(_: int) -> None:
            self.wide[self.reference_spin].run(None, self.decoded)

        def infer_only_1t(i: int) -> None:
            self.pair[i].run(None, self.decoded)

        steps: dict[str, tuple[str, Work, int]] = {
            "decode_1": ("decode only, 1 thread", decode_only, 1),
            "decode_2": ("decode only, 2 threads", decode_only, 2),
            "infer_b1_1x2": ("infer only b1, 1 session x 2 threads", infer_only, 1),
            "infer_b1_1x1": ("infer only b1, 1 session x 1 thread", infer_only_1t, 1),
        }
        return {
            key: closed_loop(label, work, submitters=n, duration=duration, warmup=warmup)
            for key, (label, work, n) in steps.items()
        }


def paired_rounds(
    reference: Callable[[], Measurement],
    candidate: Callable[[], Measurement],
    metric: Callable[[Measurement], float],
    rounds: int,
) -> list[tuple[Measurement, Measurement, float]]:
    """Alternate the two measurements (AB, BA, AB, ...) so that drifting background load
    falls on both alike; each round gives candidate / reference of `metric`."""
    out = []
    for r in range(rounds):
        if r % 2 == 0:
            ref = reference()
            cand = candidate()
        else:
            cand = candidate()
            ref = reference()
        out.append((ref, cand, metric(cand) / metric(ref)))
    return out


# -- 3. batchserve -----------------------------------------------------------------------


def auto_config(model_dir: Path) -> ModelConfig:
    """model.yaml with every scheduler decision left to profiling, whatever the file says."""
    config = load_model_config(model_dir / "model.yaml")
    scheduler = config.scheduler.model_copy(
        update={
            "kind": "auto",
            "instances": "auto",
            "threads": "auto",
            "max_batch_size": "auto",
            "max_in_flight": None,
        }
    )
    return config.model_copy(update={"scheduler": scheduler})


def scheduler_work(
    submit: Callable[[Mapping[str, np.ndarray]], Any], codec: ImageCodec, jpeg: bytes, name: str
) -> Work:
    def work(_: int) -> int:
        return submit({name: codec.decode(jpeg)}).result().batch_size

    return work


def load_sweep(
    label: str, work: Work, duration: float, warmup: float, console: Console
) -> list[Measurement]:
    out = []
    for n in SUBMITTERS:
        m = closed_loop(label, work, submitters=n, duration=duration, warmup=warmup)
        console.log(f"{label} @ {n}: {m.throughput:.1f} img/s, p50 {m.p50_ms:.1f} ms")
        out.append(m)
    return out


def explicit_layouts(
    config: ModelConfig,
    artifact: Path,
    codec: ImageCodec,
    jpeg: bytes,
    duration: float,
    warmup: float,
    console: Console,
) -> dict[str, list[Measurement]]:
    def make_instance(threads: int) -> ModelInstance:
        return load_instance(
            "onnx", artifact, runtime_options(config, get_runtime("onnx"), threads, None)
        )

    probe = make_instance(1)
    specs, name = probe.inputs, probe.inputs[0].name
    probe.close()
    layouts = {
        "DynamicBatcher b8, 1 session, 2 workers x 1 thread": SchedulerConfig(
            kind="batch", instances=2, threads=1, max_batch_size=8
        ),
        "InstancePool 2 sessions x 1 thread": SchedulerConfig(
            kind="pool", instances=2, threads=1, max_batch_size=1
        ),
        "SharedInstance 1 session x 2 threads, in flight 1": SchedulerConfig(
            kind="shared", max_in_flight=1, threads=2, max_batch_size=1
        ),
    }
    results: dict[str, list[Measurement]] = {}
    for label, scheduler_config in layouts.items():
        built = build_scheduler(
            scheduler_config,
            make_instance=make_instance,
            specs=specs,
            concurrency_safe=True,
            name=label,
        )
        scheduler: Scheduler = built.scheduler
        scheduler.start()
        try:
            warm = {name: codec.decode(jpeg)}
            for future in [scheduler.submit(warm) for _ in range(4)]:
                future.result(timeout=60)
            work = scheduler_work(scheduler.submit, codec, jpeg, name)
            results[label] = load_sweep(label, work, duration, warmup, console)
        finally:
            scheduler.stop(drain=True, timeout=30)
    return results


# -- 4. the seed's approach: eager PyTorch -----------------------------------------------


def torch_worker(mode: str, codec: ImageCodec, jpeg: bytes, duration: float, warmup: float) -> None:
    """Runs in a child process (torch threads are per process); prints JSON on stdout."""
    import torch

    sys.path.insert(0, str(ROOT / "tools"))
    from mobilenet_v1 import MobileNetV1

    torch.set_num_threads(2 if mode == "shared" else 1)
    torch.manual_seed(0)
    models = [
        MobileNetV1(num_classes=1000, alpha=1.0).eval() for _ in range(2 if mode == "pool" else 1)
    ]
    with torch.inference_mode():
        for model in models:
            model(torch.from_numpy(codec.decode(jpeg)))
    idle: queue.Queue[torch.nn.Module] = queue.Queue()
    for model in models:
        idle.put(model)

    def shared(_: int) -> None:
        x = torch.from_numpy(codec.decode(jpeg))
        with torch.inference_mode():
            models[0](x)

    def pooled(_: int) -> None:
        x = torch.from_numpy(codec.decode(jpeg))
        model = idle.get()
        try:
            with torch.inference_mode():
                model(x)
        finally:
            idle.put(model)

    label = "torch shared model, 2 threads" if mode == "shared" else "torch pool of 2 x 1 thread"
    work = shared if mode == "shared" else pooled
    runs = [
        asdict(closed_loop(label, work, submitters=n, duration=duration, warmup=warmup))
        for n in SUBMITTERS
    ]
    print(json.dumps(runs))


def torch_section(
    model_dir: Path, jpeg_path: Path, duration: float, warmup: float, console: Console
) -> dict[str, list[Measurement]] | str:
    if importlib.util.find_spec("torch") is None:
        return "torch is not importable here: section 4 skipped"
    results: dict[str, list[Measurement]] = {}
    for mode in ("shared", "pool"):
        command = [
            sys.executable,
            __file__,
            *("--torch-worker", mode, "--models", str(model_dir.parent), "--jpeg", str(jpeg_path)),
            *("--duration", str(duration), "--warmup", str(warmup)),
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=len(SUBMITTERS) * 300
        )
        if done.returncode != 0:
            return f"torch {mode} run failed: {done.stderr.strip()[-500:]}"
        runs = [Measurement(**r) for r in json.loads(done.stdout.strip().splitlines()[-1])]
        for m in runs:
            console.log(f"{m.label} @ {m.submitters}: {m.throughput:.1f} img/s")
        results[runs[0].label] = runs
    return results


# -- output ------------------------------------------------------------------------------


def load_table(title: str, rows: list[Measurement], unit: str = "img/s") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("layout", "submitters", unit, "p50 ms", "p99 ms", "mean batch", "errors"):
        table.add_column(column, justify="left" if column == "layout" else "right")
    for m in rows:
        table.add_row(
            m.label,
            str(m.submitters),
            f"{m.throughput:.1f}",
            f"{m.p50_ms:.1f}",
            f"{m.p99_ms:.1f}",
            "-" if m.mean_batch is None else f"{m.mean_batch:.2f}",
            str(m.errors) if not m.first_error else f"{m.errors} ({m.first_error[:40]})",
        )
    return table


def raw_table(rows: list[Measurement]) -> Table:
    table = Table(title="1. Raw ONNX Runtime, inference only", title_justify="left")
    for column in ("layout", "batch", "rows/s", "p50 ms per call", "vs best b1"):
        table.add_column(column, justify="left" if column == "layout" else "right")
    best_b1 = max(m.throughput for m in rows if m.rows_per_call == 1)
    for m in rows:
        table.add_row(
            m.label,
            str(m.rows_per_call),
            f"{m.throughput:.1f}",
            f"{m.p50_ms:.1f}",
            f"{m.throughput / best_b1:.2f}",
        )
    return table


def profile_table(model: LoadedModel) -> Table | None:
    profile = model.built.profile
    if profile is None:
        return None
    table = Table(title="3. batchserve auto layout: the profile", title_justify="left")
    for column in ("workers", "threads", "max batch", "rows/s (profile)", "chosen"):
        table.add_column(column, justify="right")
    for m in profile.measured:
        table.add_row(
            str(m.workers),
            str(m.threads),
            str(m.max_batch_size),
            f"{m.throughput or 0:.1f}",
            "<--" if m == profile.layout else "",
        )
    return table


def summary_table(
    headline: dict[str, dict[str, Any]],
    ceiling: Measurement,
    reference: Measurement,
    explicit: dict[str, list[Measurement]],
    torch_runs: dict[str, list[Measurement]] | str,
    auto_at64: Measurement,
) -> Table:
    def verdict(ok: bool) -> str:
        return "[green]PASS[/green]" if ok else "[red]MISS[/red]"

    table = Table(title="Summary (ratios within this run)", title_justify="left")
    for column in ("measure", "value", "target", "result"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for row in headline.values():
        rounds = ", ".join(f"{r:.2f}" for r in row["rounds"])
        table.add_row(
            f"{row['measure']}, median of {len(row['rounds'])} paired rounds ({rounds})",
            f"{row['median']:.3f}",
            row["target_text"],
            verdict(row["pass"]),
        )
        table.add_row("  same, from the single sweep above", f"{row['single']:.3f}", "", "")
    for label, runs in explicit.items():
        m64 = next(m for m in runs if m.submitters == 64)
        m1 = next(m for m in runs if m.submitters == 1)
        table.add_row(f"{label}: @64 / 2a ceiling", f"{m64.throughput / ceiling.throughput:.3f}")
        table.add_row(f"{label}: @1 p50 / 2b p50", f"{m1.p50_ms / reference.p50_ms:.3f}")
    if not isinstance(torch_runs, str):
        for label, runs in torch_runs.items():
            m64 = next(m for m in runs if m.submitters == 64)
            table.add_row(
                f"{label}: @64 / 2a ceiling", f"{m64.throughput / ceiling.throughput:.3f}"
            )
            speedup = auto_at64.throughput / m64.throughput if m64.throughput else float("inf")
            table.add_row(f"batchserve auto @64 / {label} @64", f"{speedup:.2f}x")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load step")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before each window")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per target ratio")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "engine.json")
    parser.add_argument("--models", type=Path, default=ROOT / "models-bench")
    parser.add_argument("--jpeg", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--torch-worker", choices=("shared", "pool"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    duration, warmup = args.duration, args.warmup
    short = max(1.0, duration / 2)  # sweeps and paired rounds
    model_dir = args.models / MODEL_NAME
    artifact = model_dir / "1" / "model.onnx"
    if not artifact.is_file():
        sys.exit(f"{artifact} is missing: build it with `make bench-model`")
    config = auto_config(model_dir)
    assert config.preprocessing is not None, "the benchmark model declares its preprocessing"
    codec = ImageCodec(config.preprocessing)

    if args.torch_worker:
        torch_worker(args.torch_worker, codec, args.jpeg.read_bytes(), duration, warmup)
        return

    # Wide enough that the tables do not wrap when the output is piped to a file.
    console = Console(width=max(Console().width, 150))
    scratch = Path(tempfile.mkdtemp(prefix="batchserve-bench-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    # A fresh profile on this machine as loaded now, not one cached by an earlier run.
    os.environ["BATCHSERVE_CACHE_DIR"] = str(scratch / "cache")
    jpeg_path = args.jpeg or sample_jpeg(scratch)
    jpeg = jpeg_path.read_bytes()
    began = time.perf_counter()
    load_before = os.getloadavg()
    console.log(f"model {artifact}, image {jpeg_path} ({len(jpeg)} bytes), {duration} s a step")

    console.log("1. raw ONNX Runtime sweep")
    raw = raw_inference(artifact, short, warmup)
    console.print(raw_table(raw))

    console.log("2. raw decode + inference")
    pipeline = RawPipeline(artifact, codec, jpeg)
    ceiling = pipeline.ceiling(duration, warmup)
    spinning = {spin: pipeline.reference(duration, warmup, spin) for spin in (True, False)}
    # The stricter bar: the lone-request reference is the faster of the two settings.
    pipeline.reference_spin = min(spinning, key=lambda spin: spinning[spin].p50_ms)
    reference = spinning[pipeline.reference_spin]
    parts = pipeline.parts(short, warmup)
    console.print(
        load_table(
            "2. Raw decode + inference (img/s); 2b reference: the faster spinning setting",
            [ceiling, *spinning.values(), *parts.values()],
        )
    )

    console.log("3. batchserve, auto layout (profiling)")
    load_started = time.perf_counter()
    model = load_model_version(MODEL_NAME, model_dir, 1, config)
    load_s = time.perf_counter() - load_started
    built = model.built
    try:
        layout = built.layout
        table = profile_table(model)
        if table is None:
            console.print("3. auto layout: no profile (a single candidate or a cached answer)")
        else:
            console.print(table)
        console.print(
            f"3. chosen: {built.kind} scheduler, {layout.workers} worker(s) x {layout.threads}"
            f" thread(s), max batch {layout.max_batch_size} (load + profile {load_s:.1f} s)"
        )
        auto_label = (
            f"auto: {built.kind} {layout.workers}x{layout.threads} b{layout.max_batch_size}"
        )
        image_input = config.preprocessing.input if config.preprocessing else None
        auto_work = scheduler_work(model.submit, codec, jpeg, image_input or model.inputs[0].name)
        auto_runs = load_sweep(auto_label, auto_work, duration, warmup, console)

        console.log(f"3. target ratios: {args.rounds} paired rounds each, {short} s a step")

        def auto_at(n: int) -> Callable[[], Measurement]:
            return lambda: closed_loop(
                auto_label, auto_work, submitters=n, duration=short, warmup=warmup
            )

        throughput_pairs = paired_rounds(
            lambda: pipeline.ceiling(short, warmup),
            auto_at(64),
            lambda m: m.throughput,
            args.rounds,
        )
        latency_pairs = paired_rounds(
            lambda: pipeline.reference(short, warmup),
            auto_at(1),
            lambda m: m.p50_ms,
            args.rounds,
        )
    finally:
        model.stop(drain=True, timeout=30)
    explicit = explicit_layouts(config, artifact, codec, jpeg, duration, warmup, console)
    rows = auto_runs + [m for runs in explicit.values() for m in runs]
    console.print(load_table("3. batchserve schedulers, decode included", rows))

    console.log("4. the seed's approach: eager PyTorch")
    torch_runs = torch_section(model_dir, jpeg_path, duration, warmup, console)
    if isinstance(torch_runs, str):
        console.print(f"4. {torch_runs}")
    else:
        flat = [m for runs in torch_runs.values() for m in runs]
        console.print(load_table("4. Eager PyTorch MobileNet v1 1.0, decode included", flat))

    at64 = next(m for m in auto_runs if m.submitters == 64)
    at1 = next(m for m in auto_runs if m.submitters == 1)
    throughput_median = float(np.median([r for _, _, r in throughput_pairs]))
    latency_median = float(np.median([r for _, _, r in latency_pairs]))
    headline: dict[str, dict[str, Any]] = {
        "throughput": {
            "measure": "auto @64 img/s / 2a pipeline ceiling",
            "median": throughput_median,
            "rounds": [r for _, _, r in throughput_pairs],
            "single": at64.throughput / ceiling.throughput,
            "target": THROUGHPUT_TARGET,
            "target_text": f">= {THROUGHPUT_TARGET}",
            "pass": throughput_median >= THROUGHPUT_TARGET,
            "pairs": [(asdict(a), asdict(b)) for a, b, _ in throughput_pairs],
        },
        "latency": {
            "measure": "auto @1 p50 / 2b lone-request p50",
            "median": latency_median,
            "rounds": [r for _, _, r in latency_pairs],
            "single": at1.p50_ms / reference.p50_ms,
            "target": LATENCY_TARGET,
            "target_text": f"<= {LATENCY_TARGET}",
            "pass": latency_median <= LATENCY_TARGET,
            "pairs": [(asdict(a), asdict(b)) for a, b, _ in latency_pairs],
        },
    }
    console.print(summary_table(headline, ceiling, reference, explicit, torch_runs, at64))

    report = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "duration_s": duration,
        "short_step_s": short,
        "warmup_s": warmup,
        "image": {
            "path": str(jpeg_path),
            "bytes": len(jpeg),
            "generated": jpeg_path != SAMPLE_JPEG and args.jpeg is None,
        },
        "raw_inference": [asdict(m) for m in raw],
        "raw_pipeline": {
            "ceiling": asdict(ceiling),
            "reference": asdict(reference),
            "reference_spinning": pipeline.reference_spin,
            "reference_spin_on": asdict(spinning[True]),
            "reference_spin_off": asdict(spinning[False]),
            **{k: asdict(m) for k, m in parts.items()},
        },
        "batchserve": {
            "auto": {
                "kind": built.kind,
                "layout": asdict(built.layout),
                "profile": [asdict(m) for m in built.profile.measured] if built.profile else None,
                "load_s": load_s,
                "runs": [asdict(m) for m in auto_runs],
            },
            "explicit": {k: [asdict(m) for m in v] for k, v in explicit.items()},
        },
        "torch": (
            torch_runs
            if isinstance(torch_runs, str)
            else {k: [asdict(m) for m in v] for k, v in torch_runs.items()}
        ),
        "summary": headline,
        "total_s": time.perf_counter() - began,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.log(f"wrote {args.out} in {report['total_s']:.0f} s total")


if __name__ == "__main__":
    main()
