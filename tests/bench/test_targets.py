"""Request building: loopback only, wire bytes, templates, and v2 tensors the server reads."""

from __future__ import annotations

import base64
import io
import json

import httptools
import numpy as np
import pytest
from PIL import Image

from batchserve.bench.targets import (
    Endpoint,
    Payload,
    TargetError,
    build_target,
    encode_request,
    require_loopback,
    template_payloads,
    v2_payloads,
)
from batchserve.codecs.images import ImageCodec
from batchserve.codecs.v2 import HEADER_LENGTH_HEADER, decode_infer_request
from batchserve.config import ImagePreprocessing
from batchserve.datatypes import TensorSpec


@pytest.fixture
def jpeg(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "a.jpg"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def _parse_request(wire: bytes) -> dict:
    seen: dict = {"headers": {}, "body": b""}

    class Sink:
        def on_url(self, url: bytes) -> None:
            seen["url"] = url

        def on_header(self, name: bytes, value: bytes) -> None:
            seen["headers"][name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            seen["body"] += body

        def on_message_complete(self) -> None:
            seen["complete"] = True

    parser = httptools.HttpRequestParser(Sink())
    parser.feed_data(wire)
    seen["method"] = parser.get_method()
    return seen


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.5.0.1"])
def test_loopback_hosts_are_allowed(host):
    require_loopback(host)


@pytest.mark.parametrize("url", ["http://192.0.2.10/predict", "http://[2001:db8::1]:8000/"])
def test_other_hosts_are_refused_without_allow_remote(url, jpeg):
    with pytest.raises(TargetError, match="allow-remote"):
        build_target(url, images=jpeg)
    # With the flag the target builds (nothing is sent while building an image target).
    assert build_target(url, images=jpeg, allow_remote=True).endpoint.url == url


def test_only_http_urls():
    with pytest.raises(TargetError, match="http://"):
        Endpoint.parse("https://127.0.0.1/predict")


def test_an_image_request_is_one_valid_http_message(jpeg):
    target = build_target("http://127.0.0.1:8123/v1/models/m/predict?top_k=1", images=jpeg)
    assert len(target.requests) == 1
    seen = _parse_request(target.request(5))
    assert seen["complete"] and seen["method"] == b"POST"
    assert seen["url"] == b"/v1/models/m/predict?top_k=1"
    assert seen["headers"]["host"] == "127.0.0.1:8123"
    assert seen["headers"]["content-type"] == "image/jpeg"
    assert seen["body"] == jpeg.read_bytes()


def test_images_rotate_in_folder_order(tmp_path):
    for name, colour in (("b.png", (0, 0, 255)), ("a.jpg", (255, 0, 0))):
        Image.new("RGB", (8, 8), colour).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    target = build_target("http://127.0.0.1:1/p", images=tmp_path)
    types = [_parse_request(target.request(i))["headers"]["content-type"] for i in range(4)]
    assert types == ["image/jpeg", "image/png", "image/jpeg", "image/png"]


def test_template_puts_each_image_in_base64(jpeg):
    (payload,) = template_payloads('{"image_b64": "{{image_b64}}"}', [jpeg], "application/json")
    assert base64.b64decode(json.loads(payload.body)["image_b64"]) == jpeg.read_bytes()
    (fixed,) = template_payloads('{"x": 1}', [jpeg, jpeg], "application/json")
    assert fixed.body == b'{"x": 1}'


def test_v2_binary_body_decodes_to_the_image_tensor(jpeg):
    codec = ImageCodec(ImagePreprocessing(size=(32, 32)))
    (payload,) = v2_payloads([jpeg], codec, "input")
    header_length = int(dict(payload.headers)[HEADER_LENGTH_HEADER])
    spec = TensorSpec("input", np.dtype(np.float32), (-1, 3, 32, 32))
    request = decode_infer_request(payload.body, header_length, [spec])
    np.testing.assert_array_equal(request.inputs["input"], codec.decode(jpeg.read_bytes()))


def test_v2_json_body_holds_the_same_tensor(jpeg):
    codec = ImageCodec(ImagePreprocessing(size=(16, 16)))
    (payload,) = v2_payloads([jpeg], codec, "input", "json")
    doc = json.loads(payload.body)
    tensor = np.asarray(doc["inputs"][0]["data"], np.float32).reshape(doc["inputs"][0]["shape"])
    np.testing.assert_allclose(tensor, codec.decode(jpeg.read_bytes()), rtol=1e-6)


def test_get_without_body_has_no_content_length():
    endpoint = Endpoint.parse("http://[::1]:9000/v2/health/ready")
    seen = _parse_request(encode_request(endpoint, "GET", None))
    assert seen["headers"]["host"] == "[::1]:9000"
    assert "content-length" not in seen["headers"]
    post = _parse_request(encode_request(endpoint, "POST", Payload(b"", "text/plain")))
    assert post["headers"]["content-length"] == "0"


def test_no_images_is_a_clear_error(tmp_path):
    with pytest.raises(TargetError, match=r"no \.jpg"):
        build_target("http://127.0.0.1:1/p", images=tmp_path)


def test_the_image_bytes_are_sent_untouched(jpeg):
    # The rotation sends the file's bytes untouched: Pillow still reads them.
    target = build_target("http://127.0.0.1:1/p", images=jpeg)
    body = _parse_request(target.request(0))["body"]
    assert Image.open(io.BytesIO(body)).size == (64, 48)
