"""The seed's Keras MobileNet served three ways by one live server: the SavedModel and the
`.keras` file (backend tensorflow) and the `.tflite` file (backend tflite). Each answers
v2 `infer` as TensorFlow run in-process does, `/v1/.../predict` gives the same top-k
from all three, bad input gets a 4xx and the next request is served; a `.keras` file
with Python code in it is served only when its model.yaml allows code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
import yaml

from batchserve.codecs.images import ImageCodec
from batchserve.config import load_model_config
from tests import tf_builders
from tests.live_server import SAMPLES, LiveServer
from tests.tf_builders import CLASSES, IMAGE, PROBABILITIES, TF_REPOSITORY, images

MOBILENETS = ["mobilenet_savedmodel", "mobilenet_keras", "mobilenet_tflite"]
#: The scheduler each MobileNet gets here: every value fixed, so that loading profiles
#: nothing (the layout is a benchmark's business), two workers, batches of up to 4.
FIXED_LAYOUT = {
    "mobilenet_savedmodel": {"instances": 2, "max_batch_size": 4},
    "mobilenet_keras": {"instances": 2, "max_batch_size": 4},
    "mobilenet_tflite": {"instances": 2, "threads": 1, "max_batch_size": 4},
}
#: LiteRT against TensorFlow on probabilities around 0.03 (measured: 2e-8).
TFLITE_ATOL = 1e-5


def _tolerance(model: str) -> dict[str, float]:
    return {"rtol": 0, "atol": TFLITE_ATOL} if "tflite" in model else {"rtol": 1e-5, "atol": 1e-7}


def tf_repository(root: Path) -> Path:
    """The three MobileNets of models-tf (linked) with a fixed layout, and a Keras model
    with a Lambda layer twice: as its author saved it, and with `allow_code: true`."""
    for name in MOBILENETS:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "1").symlink_to(TF_REPOSITORY / name / "1", target_is_directory=True)
        (folder / "labels.txt").symlink_to(TF_REPOSITORY / name / "labels.txt")
        config = yaml.safe_load((TF_REPOSITORY / name / "model.yaml").read_text())
        config["scheduler"] = FIXED_LAYOUT[name]
        (folder / "model.yaml").write_text(yaml.safe_dump(config))
    for name, trusted in [("lambda_refused", False), ("lambda_trusted", True)]:
        (root / name / "1").mkdir(parents=True)
        tf_builders.lambda_keras_file(root / name / "1" / "model.keras")
        (root / name / "model.yaml").write_text(
            f"backend: tensorflow\nartifact: model.keras\nallow_code: {str(trusted).lower()}\n"
            "scheduler: {instances: 1, max_batch_size: 1}\n"
        )
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    repository = tf_repository(tmp_path_factory.mktemp("models-tf"))
    with LiveServer([repository], ready_timeout=240) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpclient.InferenceServerClient]:
    c = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return (SAMPLES / "bench_640x480.jpg").read_bytes()


def _infer(client: httpclient.InferenceServerClient, model: str, batch: np.ndarray) -> np.ndarray:
    tensor = httpclient.InferInput(IMAGE, list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=True)
    wanted = httpclient.InferRequestedOutput(PROBABILITIES, binary_data=True)
    return client.infer(model, [tensor], outputs=[wanted]).as_numpy(PROBABILITIES)


def _predict(server: LiveServer, model: str, body: bytes, top_k: int = 5) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/{model}/predict",
        params={"top_k": top_k},
        content=body,
        headers={"content-type": "image/jpeg"},
        timeout=60,
    )


@pytest.mark.parametrize("model", MOBILENETS)
def test_v2_metadata_describes_the_signature_and_names_the_platform(client, model):
    meta = client.get_model_metadata(model)
    platform = "tensorflow_lite" if "tflite" in model else "tensorflow_savedmodel"
    assert meta["platform"] == platform
    assert meta["inputs"] == [{"name": IMAGE, "datatype": "FP32", "shape": [-1, 224, 224, 3]}]
    assert meta["outputs"] == [{"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, CLASSES]}]


@pytest.mark.parametrize("model", MOBILENETS)
def test_v2_infer_matches_tensorflow_run_in_process(client, model):
    batch = images(2, seed=11)
    got = _infer(client, model, batch)
    assert got.shape == (2, CLASSES)
    np.testing.assert_allclose(got, tf_builders.reference_probabilities(batch), **_tolerance(model))


def test_the_same_jpeg_gives_the_same_top_k_from_all_three(server, jpeg):
    config = load_model_config(TF_REPOSITORY / "mobilenet_savedmodel" / "model.yaml")
    assert config.preprocessing is not None and config.preprocessing.layout == "NHWC"
    expected = tf_builders.reference_probabilities(ImageCodec(config.preprocessing).decode(jpeg))[0]
    top = np.argsort(expected)[::-1][:5]
    answers = {}
    for model in MOBILENETS:
        r = _predict(server, model, jpeg)
        assert r.status_code == 200, r.text
        answers[model] = r.json()["predictions"]
    for model, predictions in answers.items():
        assert [p["index"] for p in predictions] == top.tolist(), model
        assert [p["label"] for p in predictions] == [f"class_{i:02d}" for i in top]
        np.testing.assert_allclose(
            [p["score"] for p in predictions], expected[top], **_tolerance(model)
        )
    # Another image ranks the classes differently: the agreement above is not a constant.
    other = _predict(server, "mobilenet_tflite", (SAMPLES / "blue_star.jpg").read_bytes())
    assert [p["score"] for p in other.json()["predictions"]] != pytest.approx(expected[top])


def _v2_body(shape: list[int], datatype: str = "FP32") -> dict[str, object]:
    count = int(np.prod(shape))
    return {"inputs": [{"name": IMAGE, "datatype": datatype, "shape": shape, "data": [0] * count}]}


BAD_REQUESTS = {
    # One image without its batch dimension: the input that aborts TensorFlow under oneDNN.
    "rank 3": ("v2", _v2_body([224, 224, 3]), 400, "does not match the model's"),
    "FP64": ("v2", _v2_body([1, 224, 224, 3], "FP64"), 400, "datatype FP64"),
    "other size": ("v2", _v2_body([1, 32, 32, 3]), 400, "does not match the model's"),
    "batch 0": ("v2", _v2_body([0, 224, 224, 3]), 400, "is empty"),
    "corrupt JPEG": ("v1", b"\xff\xd8\xff\xe0 this is not the rest of a JPEG", 422, "image"),
}


@pytest.mark.parametrize("model", MOBILENETS)
@pytest.mark.parametrize("kind", list(BAD_REQUESTS))
def test_bad_input_gets_a_clear_4xx_and_the_next_request_is_served(server, jpeg, model, kind):
    route, body, status, message = BAD_REQUESTS[kind]
    if route == "v2":
        r = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=60)
    else:
        assert isinstance(body, bytes)
        r = _predict(server, model, body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert _predict(server, model, jpeg, top_k=1).status_code == 200
    assert server.process.poll() is None


def test_a_keras_lambda_layer_is_served_only_where_model_yaml_allows_code(server, client):
    index = {e["name"]: e for e in httpx.post(f"{server.url}/v2/repository/index").json()}
    assert index["lambda_refused"]["state"] != "READY"
    assert "allow_code: true" in index["lambda_refused"]["reason"]
    assert not client.is_model_ready("lambda_refused")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    tensor = httpclient.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(x)
    got = client.infer("lambda_trusted", [tensor]).as_numpy("y")
    np.testing.assert_allclose(got, x * 3 + 1)
