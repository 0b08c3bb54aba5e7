"""Load one version of a model from a folder: config, runtime instances, scheduler, warm-up."""

from __future__ import annotations

import logging
from pathlib import Path

from batchserve.codecs.images import ImageCodec
from batchserve.codecs.labels import load_labels
from batchserve.config import ModelConfig, TensorConfig
from batchserve.datatypes import numpy_dtype
from batchserve.errors import ModelLoadError
from batchserve.repository.loaded_model import LoadedModel
from batchserve.runtimes import ModelInstance, RuntimeOptions, TensorSpec, load_instance
from batchserve.scheduling.factory import build_scheduler
from batchserve.scheduling.layout import file_fingerprint, sample_inputs
from batchserve.scheduling.workers import BatchObserver

log = logging.getLogger(__name__)

_PLATFORMS = {"onnx": "onnxruntime_onnx", "torch": "pytorch_libtorch"}


def _declared(tensors: list[TensorConfig]) -> tuple[TensorSpec, ...] | None:
    if not tensors:
        return None
    return tuple(TensorSpec(t.name, numpy_dtype(t.datatype), tuple(t.shape)) for t in tensors)


def runtime_options(config: ModelConfig, threads: int | None) -> RuntimeOptions:
    """What a runtime needs from model.yaml, and nothing else."""
    return RuntimeOptions(
        intra_op_threads=threads,
        device=config.device,
        providers=tuple(config.providers) if config.providers else None,
        allow_pickle=config.allow_pickle,
        torch_module=config.torch.module,
        torch_kwargs=dict(config.torch.kwargs),
        inputs=_declared(config.inputs),
        outputs=_declared(config.outputs),
    )


def load_model_version(
    name: str,
    model_dir: Path,
    version: int,
    config: ModelConfig,
    *,
    version_dir: Path | None = None,
    on_batch: BatchObserver | None = None,
    profile_budget_s: float = 6.0,
) -> LoadedModel:
    """Load `model_dir/<version>/<artifact>` as the config says, warm it up, start it."""
    artifact = (version_dir or model_dir / str(version)) / config.artifact_name()
    if not artifact.is_file():
        raise ModelLoadError(f"{name} v{version}: {artifact} does not exist")

    def make_instance(threads: int) -> ModelInstance:
        return load_instance(config.backend, artifact, runtime_options(config, threads))

    probe = make_instance(1)
    inputs, outputs = probe.inputs, probe.outputs
    safe = probe.concurrency_safe if config.concurrency_safe is None else config.concurrency_safe
    probe.close()

    labels = None
    if config.labels:
        labels_path = model_dir / config.labels
        if not labels_path.is_file():
            raise ModelLoadError(f"{name}: labels file {labels_path} does not exist")
        labels = load_labels(labels_path)

    built = build_scheduler(
        config.scheduler,
        make_instance=make_instance,
        specs=inputs,
        concurrency_safe=safe,
        name=f"{name}-v{version}",
        threads_per_instance=config.backend == "onnx",
        batchable=all(spec.batched for spec in inputs),
        on_batch=on_batch,
        cache_key=f"{config.backend}:{file_fingerprint(artifact)}",
        profile_budget_s=profile_budget_s,
    )
    built.scheduler.start()
    model = LoadedModel(
        name=name,
        version=version,
        config=config,
        inputs=inputs,
        outputs=outputs,
        built=built,
        labels=labels,
        image_codec=ImageCodec(config.preprocessing) if config.preprocessing else None,
        resident_bytes=_estimate_bytes(artifact, built),
        platform=_PLATFORMS[config.backend],
    )
    if config.warmup:
        _warm_up(model)
    return model


def _estimate_bytes(artifact: Path, built) -> int:  # type: ignore[no-untyped-def]
    """Weights once per distinct instance, plus working memory of about the same again."""
    distinct = 1 if built.kind == "shared" else built.layout.workers
    return 2 * artifact.stat().st_size * distinct


def _warm_up(model: LoadedModel) -> None:
    """One call per worker, so the first real request does not pay for allocation."""
    inputs = sample_inputs(model.inputs, 1)
    if inputs is None:
        return
    stats = model.built.scheduler.stats()
    futures = [model.submit(inputs) for _ in range(stats.workers)]
    for future in futures:
        future.result(timeout=60)
