"""Servers the bench tests load: the demo models, and a deliberately slow model.

The slow model (`onnx_builders.slow_model` with its defaults: tens of ms a call on one
thread) is served by one single-threaded instance, so the server's capacity is known and small:
`slow` with a queue of one (overload answers 503), `slowq` with a deep queue
(overload waits in the queue, which the open loop must see).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from batchserve.bench.grpc_target import GrpcTarget
from batchserve.bench.targets import Endpoint, Payload, Target, encode_request
from batchserve.codecs.grpc import inference_pb2 as pb
from batchserve.codecs.v2 import HEADER_LENGTH_HEADER
from tests import onnx_builders
from tests.live_server import LiveServer

#: The slow model's input width (the builder's default).
SLOW_SIZE = 768


@pytest.fixture(scope="session", autouse=True)
def _layout_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One layout cache for the whole session: each model is profiled once."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BATCHSERVE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def slow_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("benchrepo")
    for name, queue in (("slow", 1), ("slowq", 2000)):
        onnx_builders.slow_model(root / name / "1" / "model.onnx", SLOW_SIZE)
        (root / name / "model.yaml").write_text(
            "backend: onnx\n"
            "scheduler: {kind: pool, instances: 1, threads: 1, max_batch_size: 1, "
            f"max_queue: {queue}}}\n"
            "warmup: false\n"
        )
    return root


@pytest.fixture(scope="session")
def slow_server(slow_repository: Path) -> Iterator[LiveServer]:
    """The slow models over HTTP and gRPC."""
    with LiveServer([slow_repository], grpc=True) as server:
        yield server


def slow_target(server: LiveServer, model: str) -> Target:
    """A v2 binary infer request for the slow model, as the bench would send it."""
    endpoint = Endpoint.parse(f"{server.url}/v2/models/{model}/infer")
    raw = np.ones((1, SLOW_SIZE), "<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, SLOW_SIZE],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    payload = Payload(
        header + raw, "application/octet-stream", ((HEADER_LENGTH_HEADER, str(len(header))),)
    )
    return Target(endpoint, "POST", (encode_request(endpoint, "POST", payload),), model)


def slow_grpc_target(server: LiveServer, model: str) -> GrpcTarget:
    """A raw-contents ModelInfer for the slow model, as the bench would send it."""
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="x", datatype="FP32", shape=[1, SLOW_SIZE])
    request.raw_input_contents.append(np.ones((1, SLOW_SIZE), "<f4").tobytes())
    host, port = server.grpc_address.rsplit(":", 1)
    return GrpcTarget(
        f"grpc://{server.grpc_address}/{model}",
        host,
        int(port),
        model,
        "",
        (request.SerializeToString(),),
        (),
        model,
    )
