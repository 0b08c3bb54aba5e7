"""Build the scheduler a model's config asks for, profiling what it leaves to `auto`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batchserve.config import GenerateConfig, PaddingConfig, SchedulerConfig
from batchserve.datatypes import TensorSpec
from batchserve.errors import ConfigError
from batchserve.machine import cpu_count
from batchserve.runtimes.base import BatchFormat, ModelInstance
from batchserve.runtimes.step_model import StepModel
from batchserve.scheduling.base import Scheduler
from batchserve.scheduling.batching import Batching, ListBatching, Padding, TensorBatching
from batchserve.scheduling.continuous_batcher import ContinuousBatcher
from batchserve.scheduling.dynamic_batcher import DynamicBatcher
from batchserve.scheduling.layout import (
    BATCH_CANDIDATES,
    Layout,
    LayoutChoice,
    choose_layout,
)
from batchserve.scheduling.pool import InstancePool
from batchserve.scheduling.shared import SharedInstance
from batchserve.scheduling.workers import BatchObserver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltScheduler:
    """A started-to-be scheduler and how it was laid out: its kind, the layout in force,
    and the profile that chose it (None when nothing was measured)."""

    scheduler: Scheduler
    kind: str  # "shared" | "pool" | "batch" | "continuous"
    layout: Layout
    profile: LayoutChoice | None


def shares_one_instance(config: SchedulerConfig, concurrency_safe: bool) -> bool:
    """One instance serves every worker when that is safe (the weights once in memory),
    unless the config asks for a pool of separate instances."""
    return concurrency_safe and config.kind != "pool"


#: A "list" instance (a Python model) takes opaque values that cannot be made up, so
#: its layout is not profiled: one worker, whose model code picks its own threads (numpy
#: and ONNX Runtime inside it use the cores), and batches of up to 8 requests, which form
#: only while that worker is busy (work-conserving). model.yaml's explicit values win.
LIST_WORKERS = 1
LIST_BATCH = 8


def build_scheduler(
    config: SchedulerConfig,
    *,
    make_instance: Callable[[int], ModelInstance],
    specs: tuple[TensorSpec, ...],
    concurrency_safe: bool,
    name: str,
    batch_format: BatchFormat = "tensors",
    threads_per_instance: bool = True,
    batchable: bool = True,
    on_batch: BatchObserver | None = None,
    cache_key: str | None = None,
    cache_dir: Path | None = None,
    profile_budget_s: float = 6.0,
) -> BuiltScheduler:
    """Resolve `auto` fields (by profiling), load the instances, build the scheduler.

    `threads_per_instance` is False for runtimes whose thread count is per
    process (PyTorch): then threads are not a profiled dimension. `batchable`
    is False when the model has no dynamic batch dimension. `batch_format` is the
    instances' (see `batching.py`): "list" instances are laid out by `LIST_*`, unprofiled.
    """
    kind = config.kind
    if kind == "shared" and not concurrency_safe:
        raise ConfigError(
            f"{name}: scheduler kind 'shared' but the instance is not safe to call "
            "concurrently (see `batchserve check`); use 'pool'"
        )
    cores = cpu_count()
    if config.max_in_flight is not None:
        workers = [config.max_in_flight]
    elif isinstance(config.instances, int):
        workers = [config.instances]
    else:
        workers = sorted({1, cores}) if kind in ("auto", "batch") else [cores]
    threads = [config.threads] if isinstance(config.threads, int) else None
    if not threads_per_instance:
        threads = [threads[0] if threads else cores]
    if kind in ("shared", "pool") or not batchable:
        batches = [1]
    elif isinstance(config.max_batch_size, int):
        batches = [config.max_batch_size]
    else:
        batches = list(BATCH_CANDIDATES)

    share = shares_one_instance(config, concurrency_safe)
    batching: Batching
    if batch_format == "list":
        if config.pad is not None:
            raise ConfigError(f"{name}: scheduler.pad pads tensors; this model's inputs are not")
        batching = ListBatching()
        choice = LayoutChoice(_list_layout(config, kind, threads, cores), (), from_cache=False)
    else:
        batching = TensorBatching(padding_for(config.pad, specs))
        choice = choose_layout(
            make_instance=make_instance,
            specs=specs,
            concurrency_safe=share,
            workers=workers,
            threads=threads,
            batch_sizes=batches,
            budget_s=profile_budget_s,
            cache_key=cache_key,
            cache_dir=cache_dir,
        )
    layout = choice.layout
    if kind == "auto":
        kind = "batch" if layout.max_batch_size > 1 else ("shared" if concurrency_safe else "pool")

    if share:
        one = make_instance(layout.threads)
        instances = [one] * layout.workers
    else:
        instances = [make_instance(layout.threads) for _ in range(layout.workers)]

    wide = None
    if (
        config.wide_when_idle
        and threads_per_instance
        and layout.workers > 1
        and layout.threads < cores
        and choice.lone_request_faster_on(cores)
    ):
        # A lone request runs on all the cores; a busy server keeps one narrow call per core.
        wide = make_instance(cores)

    scheduler: Scheduler
    common = {
        "max_queue": config.max_queue,
        "name": name,
        "on_batch": on_batch,
        "wide_instance": wide,
        "batching": batching,
    }
    if kind == "batch":
        scheduler = DynamicBatcher(
            instances,
            max_batch_size=layout.max_batch_size,
            max_delay_s=config.max_delay_ms / 1000.0,
            **common,  # type: ignore[arg-type]
        )
    elif kind == "shared":
        scheduler = SharedInstance(instances[0], max_in_flight=layout.workers, **common)  # type: ignore[arg-type]
    else:
        scheduler = InstancePool(instances, **common)  # type: ignore[arg-type]
    log.info(
        "%s: %s scheduler, %d worker(s) x %d thread(s), max batch %d%s%s",
        name,
        kind,
        layout.workers,
        layout.threads,
        layout.max_batch_size,
        f", a {cores}-thread instance when idle" if wide is not None else "",
        " (cached profile)" if choice.from_cache else "",
    )
    return BuiltScheduler(scheduler, kind, layout, choice if choice.measured else None)


def _list_layout(
    config: SchedulerConfig, kind: str, threads: list[int] | None, cores: int
) -> Layout:
    """The layout of a "list" model: model.yaml's values, else the `LIST_*` defaults."""
    if config.max_in_flight is not None:
        workers = config.max_in_flight
    elif isinstance(config.instances, int):
        workers = config.instances
    else:
        workers = LIST_WORKERS
    if kind in ("shared", "pool"):
        batch = 1
    elif isinstance(config.max_batch_size, int):
        batch = config.max_batch_size
    else:
        batch = LIST_BATCH
    return Layout(workers, threads[0] if threads else cores, batch)


def padding_for(config: PaddingConfig | None, specs: tuple[TensorSpec, ...]) -> Padding | None:
    """The padding `config` asks for, on the dynamic non-batch axes of the model's inputs."""
    if config is None:
        return None
    axes = {
        spec.name: tuple(i for i, d in enumerate(spec.shape) if i > 0 and d < 0) for spec in specs
    }
    if not any(axes.values()):
        log.warning("scheduler.pad is set but no input has a dynamic non-batch dimension")
        return None
    return Padding(
        axes={name: a for name, a in axes.items() if a},
        bucket=config.bucket,
        value=config.value,
        values=dict(config.values),
        unpad_outputs=tuple(config.unpad_outputs),
    )


#: A step of a small model is too short to split across threads; one thread per
#: call leaves the other cores to HTTP, tokenizing and sampling.
GENERATE_THREADS = 1
GENERATE_BATCH = 32


def build_continuous_batcher(
    config: SchedulerConfig,
    generate: GenerateConfig,
    *,
    make_instance: Callable[[int], ModelInstance],
    name: str,
    on_batch: BatchObserver | None = None,
) -> BuiltScheduler:
    """A `ContinuousBatcher` over one step-model instance, for `task: generate`."""
    if config.kind != "auto":
        raise ConfigError(
            f"{name}: task 'generate' is served by the continuous batcher; "
            f"leave scheduler.kind as auto, not {config.kind!r}"
        )
    threads = config.threads if isinstance(config.threads, int) else GENERATE_THREADS
    batch = config.max_batch_size if isinstance(config.max_batch_size, int) else GENERATE_BATCH
    model = StepModel(
        make_instance(threads),
        eos_token=generate.eos_token,
        bos_token=generate.bos_token,
        names=generate.tensors,
    )
    batcher = ContinuousBatcher(
        model,
        max_batch_size=batch,
        max_queue=config.max_queue,
        max_prompt_tokens=generate.max_prompt_tokens,
        default_max_tokens=generate.max_tokens,
        policy=generate.batching,
        name=name,
        on_step=on_batch,
    )
    log.info("%s: continuous batcher (%s), up to %d sequences", name, generate.batching, batch)
    return BuiltScheduler(batcher, "continuous", Layout(1, threads, batch), None)
