"""Load one version of a model from a folder: config, runtime instances, scheduler, warm-up."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from batchserve.codecs.classifier import ImageClassifier
from batchserve.codecs.custom_format import CustomFormatCodec
from batchserve.codecs.images import ImageCodec
from batchserve.codecs.labels import load_labels
from batchserve.codecs.model_codec import ModelCodec
from batchserve.codecs.text import load_text_codec, served_specs
from batchserve.config import ModelConfig, TensorConfig, load_model_config
from batchserve.datatypes import TensorSpec, numpy_dtype
from batchserve.errors import BatchserveError, ConfigError, ModelLoadError
from batchserve.machine import cpu_count
from batchserve.repository.loaded_model import LoadedModel, release_freed_memory
from batchserve.runtimes import ModelInstance, Runtime, RuntimeOptions, get_runtime
from batchserve.runtimes.base import CustomFormat
from batchserve.runtimes.registry import check_backend
from batchserve.scheduling.factory import (
    build_continuous_batcher,
    build_scheduler,
    shares_one_instance,
)
from batchserve.scheduling.layout import file_fingerprint, sample_inputs
from batchserve.scheduling.workers import BatchObserver

log = logging.getLogger(__name__)


def _declared(tensors: list[TensorConfig]) -> tuple[TensorSpec, ...] | None:
    if not tensors:
        return None
    return tuple(TensorSpec(t.name, numpy_dtype(t.datatype), tuple(t.shape)) for t in tensors)


def read_config(path: Path) -> ModelConfig:
    """A model.yaml, validated, whose backend this installation can serve; a ConfigError
    names the file and the field."""
    config = load_model_config(path)
    try:
        check_backend(config.backend)
    except ValueError as exc:
        raise ConfigError(f"{path}: backend: {exc}") from None
    return config


def runtime_options(
    config: ModelConfig, runtime: Runtime, threads: int | None, model_dir: Path | None
) -> RuntimeOptions:
    """What a runtime needs from model.yaml, its own `options:` validated by it."""
    try:
        options = runtime.parse_options(config.options)
    except ConfigError as exc:
        where = model_dir / "model.yaml" if model_dir is not None else "model.yaml"
        raise ConfigError(f"{where}: {exc}") from None
    return RuntimeOptions(
        intra_op_threads=threads,
        device=config.device,
        allow_pickle=config.allow_pickle,
        allow_code=config.allow_code,
        inputs=_declared(config.inputs),
        outputs=_declared(config.outputs),
        model_dir=model_dir,
        options=options,
    )


def artifact_path(config: ModelConfig, runtime: Runtime, version_dir: Path) -> Path:
    """The version's artifact: model.yaml's `artifact`, else the runtime's default name."""
    return version_dir / (config.artifact or runtime.default_artifact)


def load_model_version(
    name: str,
    model_dir: Path,
    version: int,
    config: ModelConfig,
    *,
    version_dir: Path | None = None,
    on_batch: BatchObserver | None = None,
    profile_budget_s: float = 6.0,
    source: str = "",
) -> LoadedModel:
    """Load `model_dir/<version>/<artifact>` as the config says, warm it up, start it.

    Every instance it creates is recorded on the result, so that unloading the
    model releases them; if any step fails, what was started is stopped again.
    """
    started = time.perf_counter()
    version_dir = version_dir or model_dir / str(version)
    runtime = get_runtime(config.backend)
    artifact = artifact_path(config, runtime, version_dir)
    if not artifact.exists():
        raise ModelLoadError(f"{name} v{version}: {artifact} does not exist")
    runtime_options(config, runtime, None, model_dir)  # a bad `options:` fails before loading

    created: list[ModelInstance] = []

    def make_instance(threads: int) -> ModelInstance:
        instance = runtime.load(artifact, runtime_options(config, runtime, threads, model_dir))
        created.append(instance)
        return instance

    built = None
    try:
        # Process-wide thread counts are set once: the probe must ask for the real one.
        threads = config.scheduler.threads
        probe = make_instance(threads if isinstance(threads, int) else cpu_count())
        inputs, outputs = probe.inputs, probe.outputs
        if probe.never_shared and config.concurrency_safe:
            raise ConfigError(
                f"{name}: model.yaml says concurrency_safe: true, but backend "
                f"{config.backend!r} never shares an instance between threads; remove it"
            )
        safe = config.concurrency_safe
        if safe is None:
            safe = probe.concurrency_safe
        warm_inputs = probe.example_request(0)
        custom = probe.custom_format()
        if custom is None:
            probe.close()
        # else the model's own decode/encode run on the probe, which stays open with the model

        codec = build_codec(name, config, model_dir, inputs, outputs, custom)
        if config.generate is not None:
            built = build_continuous_batcher(
                config.scheduler,
                config.generate,
                make_instance=make_instance,
                name=f"{name}-v{version}",
                on_batch=on_batch,
            )
        else:
            built = build_scheduler(
                config.scheduler,
                make_instance=make_instance,
                specs=inputs,
                concurrency_safe=safe,
                batch_format=probe.batch_format,
                name=f"{name}-v{version}",
                threads_per_instance=not runtime.threads_per_process,
                batchable=all(spec.batched for spec in inputs),
                on_batch=on_batch,
                cache_key=f"{config.backend}:{file_fingerprint(artifact)}",
                profile_budget_s=profile_budget_s,
            )
        built.scheduler.start()
        # A text model is served as text: its v2 metadata and inputs are text tensors.
        inputs, outputs = served_specs(config, inputs, outputs)
        distinct = distinct_instances(config, safe, built.layout.workers)
        model = LoadedModel(
            name=name,
            version=version,
            config=config,
            inputs=inputs,
            outputs=outputs,
            built=built,
            codec=codec,
            resident_bytes=estimate_resident_bytes(weights_bytes(version_dir), distinct),
            platform=runtime.platform,
            instances=tuple(created),
            source=source,
        )
        if config.warmup:
            _warm_up(model, warm_inputs)
    except BaseException:
        if built is not None:
            built.scheduler.stop(drain=False, timeout=5)
        for instance in created:
            instance.close()
        raise
    model.load_seconds = time.perf_counter() - started
    # Loading leaves the model file's bytes, the graph before optimisation and the layout
    # profile's instances freed but held by glibc: MobileNet v1, 107 -> 72 MB resident
    # for one session once handed back.
    release_freed_memory()
    return model


def build_codec(
    name: str,
    config: ModelConfig,
    model_dir: Path,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    custom: CustomFormat | None = None,
) -> ModelCodec:
    """The model's request and response formats, from its model.yaml and files: the
    model's own /predict format when its runtime has one (`custom`), else an image
    classifier's when model.yaml has `preprocessing`."""
    labels = None
    if config.labels:
        labels_path = model_dir / config.labels
        if not labels_path.is_file():
            raise ModelLoadError(f"{name}: labels file {labels_path} does not exist")
        labels = load_labels(labels_path)
    predict = None
    prep = config.preprocessing
    if custom is not None:
        predict = CustomFormatCodec(custom.decode, custom.encode, custom.takes_images)
    elif prep is not None:
        predict = ImageClassifier(
            image=ImageCodec(prep),
            input_name=prep.input or inputs[0].name,
            output_name=config.classification.output or outputs[0].name,
            classification=config.classification,
            labels=labels,
        )
    return ModelCodec(predict=predict, labels=labels, text=load_text_codec(config, model_dir))


# -- memory estimate -------------------------------------------------------------------
#
# Why an estimate and not a measurement: the resident-size change around a load was
# measured with ONNX Runtime on this project's models, and it is not a property of
# the model. The same 16.8 MB MobileNet read +52 and +58 MB on two fresh loads in a
# row, and +0.1 MB once an unloaded model's freed memory was there for the allocator
# to reuse, even after malloc_trim; loads running beside inference on other models
# add their noise too. A budget also has to decide before the memory is spent
# (unload others, or refuse a model that can never fit). So the budget counts what
# ONNX Runtime keeps per session: the weights, plus their pre-packed copies and the
# working arena, about as much again: 2 x the version's files, per distinct instance.


def weights_bytes(path: Path) -> int:
    """Bytes of a version's files (the artifact and any external weights beside it), or
    of one artifact file."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def distinct_instances(config: ModelConfig, concurrency_safe: bool, workers: int) -> int:
    """Instances that hold their own weights: one when the scheduler shares it."""
    return 1 if shares_one_instance(config.scheduler, concurrency_safe) else workers


def estimate_resident_bytes(weights: int, distinct: int) -> int:
    return 2 * weights * max(1, distinct)


def predict_resident_bytes(config: ModelConfig, version_dir: Path) -> int:
    """The estimate before loading, when the layout is not chosen yet: the most workers
    the config allows stands for `auto`."""
    sched = config.scheduler
    if sched.max_in_flight is not None:
        workers = sched.max_in_flight
    elif isinstance(sched.instances, int):
        workers = sched.instances
    else:
        workers = cpu_count()
    safe = config.concurrency_safe
    if safe is None:
        safe = get_runtime(config.backend).shared_by_default
    distinct = distinct_instances(config, safe, workers)
    return estimate_resident_bytes(weights_bytes(version_dir), distinct)


def _warm_up(model: LoadedModel, example: object | None = None) -> None:
    """One call per worker, so the first real request does not pay for allocation: on the
    model's own example input when it has one, else on random tensors of its inputs."""
    if example is not None:
        inputs, what = example, "the model's example"
    else:
        inputs, what = sample_inputs(model.inputs, 1) if model.inputs else None, "random inputs"
    if inputs is None:
        return
    futures = [model.submit(inputs) for _ in range(model.workers)]
    try:
        for future in futures:
            future.result(timeout=60)
    except BatchserveError as exc:
        raise ModelLoadError(
            f"warm-up on {what} failed: {exc} (`warmup: false` in model.yaml skips it)"
        ) from exc
