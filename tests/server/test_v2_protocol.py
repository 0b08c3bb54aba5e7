"""The v2 protocol through the official tritonclient.http client, unchanged."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def client(demo_server):
    c = httpclient.InferenceServerClient(demo_server.url.removeprefix("http://"))
    yield c
    c.close()


def test_health_and_server_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("shapes")
    assert client.is_model_ready("shapes", "1")
    meta = client.get_server_metadata()
    assert meta["name"] == "batchserve"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata(client):
    meta = client.get_model_metadata("shapes")
    assert meta["name"] == "shapes"
    assert meta["versions"] == ["1"]
    (inp,) = meta["inputs"]
    assert inp["datatype"] == "FP32" and inp["shape"][0] == -1 and len(inp["shape"]) == 4
    assert meta["outputs"][0]["shape"][0] == -1
    assert client.get_model_metadata("shapes", "1")["versions"] == ["1"]
    with pytest.raises(InferenceServerException):
        client.get_model_metadata("nope")


def _request(in_process, image: bytes, binary: bool):
    tensor = in_process.codec.decode(image)
    inp = httpclient.InferInput("input", list(tensor.shape), "FP32")
    inp.set_data_from_numpy(tensor, binary_data=binary)
    return tensor, inp


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_equals_in_process(client, in_process, samples, binary):
    for image in samples.values():
        tensor, inp = _request(in_process, image, binary)
        out = httpclient.InferRequestedOutput("logits", binary_data=binary)
        result = client.infer("shapes", [inp], outputs=[out])
        expected = in_process.session.run(None, {"input": tensor})[0]
        np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=1e-4, atol=1e-4)


def test_batched_infer_on_a_version(client, in_process, samples):
    tensors = np.concatenate([in_process.codec.decode(img) for img in samples.values()])
    inp = httpclient.InferInput("input", list(tensors.shape), "FP32")
    inp.set_data_from_numpy(tensors, binary_data=True)
    result = client.infer("shapes", [inp], model_version="1")
    expected = in_process.session.run(None, {"input": tensors})[0]
    np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=1e-4, atol=1e-4)


def test_classification_extension(client, in_process, samples):
    for label, image in samples.items():
        _, inp = _request(in_process, image, binary=True)
        out = httpclient.InferRequestedOutput("logits", class_count=3)
        result = client.infer("shapes", [inp], outputs=[out])
        top = result.as_numpy("logits")
        assert top.shape == (1, 3)
        score, index, name = top[0, 0].decode().split(":", 2)
        assert name == label
        assert in_process.labels[int(index)] == label
        assert float(score) == pytest.approx(float(in_process.logits(image).max()), rel=1e-3)


def test_bad_input_is_an_exception_then_the_next_call_works(client, in_process, samples):
    inp = httpclient.InferInput("nope", [1, 2], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 2), np.float32))
    with pytest.raises(InferenceServerException, match="nope"):
        client.infer("shapes", [inp])
    _, good = _request(in_process, next(iter(samples.values())), binary=True)
    assert client.infer("shapes", [good]).as_numpy("logits").shape[0] == 1


def test_model_config_and_ready_bodies(client, demo_server):
    config = client.get_model_config("shapes")
    assert config["name"] == "shapes"
    assert config["preprocessing"]["size"] == [64, 64]
    assert config["max_batch_size"] >= 1
    body = httpx.get(f"{demo_server.url}/v2/models/shapes/versions/1/ready").json()
    assert body == {"name": "shapes", "version": "1", "ready": True}
