"""Metadata messages of the v2 gRPC protocol: the server's, a model's, a model's config.

`model_config` answers Triton's ModelConfig in Triton's own terms, so that tools
written for Triton read it: with ``max_batch_size`` > 0 the ``dims`` leave out the
batch dimension, a generation model is ``decoupled`` (it streams any number of
responses), and batchserve's own settings without a Triton field (the task, the
image preprocessing, the scheduler) are ``parameters``: ``task`` as text,
``scheduler`` and ``preprocessing`` as JSON objects (model.yaml's blocks), and
``layout`` as JSON (the instances and batch size it runs with).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from batchserve.codecs.grpc import inference_pb2 as pb
from batchserve.config import ModelConfig
from batchserve.datatypes import TensorSpec

#: Triton's backend names for ours.
_BACKENDS = {"onnx": "onnxruntime", "torch": "pytorch"}


def server_metadata(
    name: str, version: str, extensions: Sequence[str]
) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=name, version=version, extensions=list(extensions))


def model_metadata(
    name: str,
    versions: Sequence[int | str],
    platform: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
) -> pb.ModelMetadataResponse:
    """A model's tensors as the metadata RPC describes them (-1: any size)."""
    return pb.ModelMetadataResponse(
        name=name,
        versions=[str(v) for v in versions],
        platform=platform,
        inputs=[_tensor(spec) for spec in inputs],
        outputs=[_tensor(spec) for spec in outputs],
    )


def _tensor(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=spec.datatype, shape=list(spec.shape)
    )


def model_config(
    name: str,
    config: ModelConfig,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    *,
    platform: str,
    max_batch_size: int,
    instances: int,
    has_labels: bool,
) -> pb.ModelConfigResponse:
    """The config of a loaded model version. ``max_batch_size`` (rows a runtime call
    takes) and ``instances`` are the layout it runs with: model.yaml's, or the measured
    one for ``auto``. It is `dynamic_batching` when requests are stacked into batches
    (more than one row a call, and not a generation model, which batches by steps)."""
    batching = max_batch_size > 0 and all(spec.batched for spec in (*inputs, *outputs))
    message = pb.ModelConfig(
        name=name,
        platform=platform,
        backend=_BACKENDS.get(config.backend, config.backend),
        max_batch_size=max_batch_size if batching else 0,
        version_policy=_version_policy(config),
        instance_group=[
            pb.ModelInstanceGroup(
                name=name,
                count=instances,
                kind=pb.ModelInstanceGroup.KIND_GPU
                if config.device == "cuda"
                else pb.ModelInstanceGroup.KIND_CPU,
            )
        ],
        model_transaction_policy=pb.ModelTransactionPolicy(decoupled=config.task == "generate"),
    )
    prep = config.preprocessing
    for spec in inputs:
        entry = message.input.add(
            name=spec.name,
            data_type=_data_type(spec.datatype),
            dims=list(spec.shape[1:] if batching else spec.shape),
        )
        if prep is not None and spec.name == (prep.input or inputs[0].name):
            entry.format = (
                pb.ModelInput.FORMAT_NCHW if prep.layout == "NCHW" else pb.ModelInput.FORMAT_NHWC
            )
    for spec in outputs:
        message.output.add(
            name=spec.name,
            data_type=_data_type(spec.datatype),
            dims=list(spec.shape[1:] if batching else spec.shape),
            label_filename=(config.labels or "") if has_labels else "",
        )
    scheduler = config.scheduler
    if max_batch_size > 1 and config.task != "generate":
        dynamic = message.dynamic_batching
        dynamic.max_queue_delay_microseconds = round(scheduler.max_delay_ms * 1000)
        dynamic.default_queue_policy.max_queue_size = scheduler.max_queue
        if scheduler.timeout_ms is not None:
            dynamic.default_queue_policy.default_timeout_microseconds = round(
                scheduler.timeout_ms * 1000
            )
    message.parameters["task"].string_value = config.task
    message.parameters["scheduler"].string_value = json.dumps(scheduler.model_dump(mode="json"))
    message.parameters["layout"].string_value = json.dumps(
        {"instances": instances, "max_batch_size": max_batch_size}
    )
    if prep is not None:
        message.parameters["preprocessing"].string_value = json.dumps(prep.model_dump(mode="json"))
    return pb.ModelConfigResponse(config=message)


def _version_policy(config: ModelConfig) -> pb.ModelVersionPolicy:
    policy = config.version_policy
    if policy.all:
        return pb.ModelVersionPolicy(all=pb.ModelVersionPolicy.All())
    if policy.specific:
        return pb.ModelVersionPolicy(
            specific=pb.ModelVersionPolicy.Specific(versions=policy.specific)
        )
    return pb.ModelVersionPolicy(
        latest=pb.ModelVersionPolicy.Latest(num_versions=policy.latest or 1)
    )


def _data_type(datatype: str) -> pb.DataType.ValueType:
    """'FP32' -> TYPE_FP32; BYTES is Triton's TYPE_STRING."""
    return pb.DataType.Value("TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}")
