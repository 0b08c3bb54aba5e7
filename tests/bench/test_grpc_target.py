"""What a grpc:// bench target sends: the URL, and requests built from what the server's
own ModelMetadata and ModelConfig say (a real server's gRPC port on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from batchserve.bench.grpc_target import build_grpc_target, parse_grpc_url
from batchserve.bench.targets import TargetError
from batchserve.codecs.grpc import inference_pb2 as pb
from tests.live_server import DEMO_REPOSITORY, SAMPLES, LiveServer


@pytest.fixture(scope="module")
def demo_grpc() -> Iterator[LiveServer]:
    with LiveServer([DEMO_REPOSITORY], grpc=True) as server:
        yield server


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("grpc://127.0.0.1:9001/mobilenet_v1", ("127.0.0.1", 9001, "mobilenet_v1", "")),
        ("grpc://localhost/shapes/versions/2", ("localhost", 8001, "shapes", "2")),
        ("grpc://[::1]:8001/m", ("::1", 8001, "m", "")),
    ],
)
def test_grpc_urls(url, parsed):
    assert parse_grpc_url(url) == parsed


@pytest.mark.parametrize("url", ["grpc://127.0.0.1:8001", "grpc://h:1/a/b", "http://h/m"])
def test_bad_grpc_urls_say_the_form(url):
    with pytest.raises(TargetError, match=r"grpc://HOST\[:PORT\]/MODEL"):
        parse_grpc_url(url)


def test_other_hosts_are_refused_without_allow_remote():
    with pytest.raises(TargetError, match="allow-remote"):
        build_grpc_target("grpc://192.0.2.10:8001/shapes")


@pytest.mark.parametrize("encoding", ["binary", "json"])
def test_requests_follow_the_servers_model_config(demo_grpc, encoding):
    image = SAMPLES / "red_circle.jpg"
    target = build_grpc_target(
        f"grpc://{demo_grpc.grpc_address}/shapes", images=image, v2_encoding=encoding
    )
    (raw,) = target.requests
    request = pb.ModelInferRequest.FromString(raw)
    assert request.model_name == "shapes"
    (entry,) = request.inputs
    # The demo's 64x64 preprocessing, from ModelConfig's "preprocessing" parameter.
    assert (entry.name, entry.datatype, list(entry.shape)) == ("input", "FP32", [1, 3, 64, 64])
    if encoding == "binary":
        assert len(request.raw_input_contents[0]) == 3 * 64 * 64 * 4
    else:
        assert not request.raw_input_contents
        values = np.array(entry.contents.fp32_contents, np.float32)
        assert values.size == 3 * 64 * 64 and -1.0 <= values.min() < values.max() <= 1.0


def test_an_unknown_model_is_a_clear_target_error(demo_grpc):
    with pytest.raises(TargetError, match="NOT_FOUND"):
        build_grpc_target(f"grpc://{demo_grpc.grpc_address}/nope", images=SAMPLES)
