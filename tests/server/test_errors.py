"""Every error status with a malformed input of its kind, each followed by a good request."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests import onnx_builders
from tests.live_server import DEMO_REPOSITORY, LiveServer


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def still_serves(demo_server, samples):
    label, image = next(iter(samples.items()))

    def check() -> None:
        r = httpx.post(
            f"{demo_server.url}/v1/models/shapes/predict",
            content=image,
            headers={"content-type": "image/jpeg"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["label"] == label

    return check


def _post_image(url: str, body: bytes, content_type: str = "image/jpeg") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/models/shapes/predict",
        content=body,
        headers={"content-type": content_type},
        timeout=30,
    )


def _assert_error(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    message = r.json()["error"]
    for word in words:
        assert word in message.lower(), message


def test_unsupported_media_type_415(demo_server, still_serves):
    _assert_error(_post_image(demo_server.url, b"hello", "text/plain"), 415, "text/plain")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    _assert_error(_post_image(demo_server.url, gif.getvalue()), 415, "gif")
    still_serves()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", ("empty",)),
        (b"\xff\xd8\xff\xe0 not really a jpeg", ("decodable",)),
    ],
    ids=["zero-byte", "undecodable"],
)
def test_bad_images_422(demo_server, still_serves, body, words):
    _assert_error(_post_image(demo_server.url, body), 422, *words)
    still_serves()


def test_truncated_image_422(demo_server, still_serves, samples):
    image = next(iter(samples.values()))
    _assert_error(_post_image(demo_server.url, image[: len(image) // 2]), 422)
    still_serves()


def test_decompression_bomb_422(demo_server, still_serves):
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, "PNG")
    _assert_error(_post_image(demo_server.url, buf.getvalue(), "image/png"), 422, "pixels")
    still_serves()


def test_bad_json_bodies_422(demo_server, still_serves):
    url = f"{demo_server.url}/v1/models/shapes/predict"
    r = httpx.post(url, content=b"{nope", headers={"content-type": "application/json"})
    _assert_error(r, 422, "json")
    _assert_error(httpx.post(url, json={"image_b64": "***"}), 422, "base64")
    _assert_error(httpx.post(url, json={"something": 1}), 422, "url")
    _assert_error(httpx.post(f"{url}?top_k=0", json={"image_b64": ""}), 422, "top_k")
    still_serves()


def test_v2_wrong_shape_and_datatype_400(demo_server, still_serves):
    url = f"{demo_server.url}/v2/models/shapes/infer"
    bad_shape = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]
    }
    _assert_error(httpx.post(url, json=bad_shape), 400, "shape")
    n = 3 * 64 * 64
    bad_type = {
        "inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 3, 64, 64], "data": [0] * n}]
    }
    _assert_error(httpx.post(url, json=bad_type), 400, "datatype")
    _assert_error(httpx.post(url, content=b"not json"), 400)
    still_serves()


def test_unknown_route_is_json_404(demo_server):
    _assert_error(httpx.get(f"{demo_server.url}/no/such/route"), 404, "not found")


@pytest.fixture(scope="module")
def slow_repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slowrepo")
    onnx_builders.slow_model(root / "slow" / "1" / "model.onnx")
    (root / "slow" / "model.yaml").write_text(
        "backend: onnx\nscheduler: {kind: pool, instances: 1, threads: 1, max_queue: 2}\n"
        "warmup: false\n"
    )
    return root


@pytest.fixture(scope="module")
def small_server(slow_repository) -> Iterator[LiveServer]:
    with LiveServer(
        [DEMO_REPOSITORY, slow_repository],
        *("--max-body-mb", "0.05", "--request-timeout", "2", "--no-url-fetch"),
    ) as server:
        yield server


def _slow_infer(url: str, timeout: float = 30) -> httpx.Response:
    x = np.ones((1, 768), np.float32)
    body = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 768], "data": x.ravel().tolist()}]
    }
    return httpx.post(f"{url}/v2/models/slow/infer", content=json.dumps(body), timeout=timeout)


def test_body_over_the_limit_413(small_server, samples):
    _assert_error(_post_image(small_server.url, b"\xff" * 60_000), 413, "limit")
    # chunked, with no Content-Length: cut while streaming
    chunks = (b"\xff" * 10_000 for _ in range(10))
    r = httpx.post(
        f"{small_server.url}/v1/models/shapes/predict",
        content=chunks,
        headers={"content-type": "image/jpeg"},
    )
    _assert_error(r, 413, "limit")
    assert _post_image(small_server.url, next(iter(samples.values()))).status_code == 200


def test_queue_full_503_with_retry_after(small_server):
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda _: _slow_infer(small_server.url), range(12)))
    statuses = [r.status_code for r in responses]
    assert 503 in statuses and 200 in statuses, statuses
    full = next(r for r in responses if r.status_code == 503)
    assert full.headers["retry-after"].isdigit()
    assert "queue is full" in full.json()["error"]
    assert _slow_infer(small_server.url).status_code == 200


def test_deadline_504(slow_repository, samples):
    with LiveServer([slow_repository], "--request-timeout", "0.02") as server:
        r = _slow_infer(server.url)
        _assert_error(r, 504, "timeout")
        assert r.headers.get("x-request-id")


def test_url_fetching_switched_off_422(small_server, samples):
    r = httpx.post(
        f"{small_server.url}/v1/models/shapes/predict", json={"url": "http://127.0.0.1:9/x.jpg"}
    )
    _assert_error(r, 422, "switched off")
    assert _post_image(small_server.url, next(iter(samples.values()))).status_code == 200
