"""examples/detector: the shapes classifier run over the cells of a larger picture, served
as a Python model with its own decode (image bytes) and encode (detections JSON).

Pictures come from tools/shapes.py with their ground truth: every shape must be found,
in the right place, with the right label, and nothing else found.
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from PIL import Image

from tests.live_server import LiveServer
from tools.shapes import CLASSES, draw_objects

SEEDS = (11, 12, 13, 14)


def iou(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def scenes() -> list[tuple[Image.Image, list]]:
    return [draw_objects(np.random.default_rng(seed), size=256, count=5) for seed in SEEDS]


def predict(server: LiveServer, body: bytes, content_type: str = "image/png") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/detector/predict",
        content=body,
        headers={"content-type": content_type},
        timeout=60,
    )


def test_every_shape_is_found_where_it_is_with_its_label(examples_server, scenes) -> None:
    for image, truth in scenes:
        answer = predict(examples_server, encoded(image))
        assert answer.status_code == 200, answer.text
        detections = answer.json()["predictions"]
        assert len(detections) == len(truth)  # nothing found that is not there
        for class_index, box in truth:
            best = max(detections, key=lambda d: iou(d["box"], box))
            assert iou(best["box"], box) > 0.6, (best, box)
            assert best["label"] == CLASSES[class_index]
            assert 0.3 <= best["score"] <= 1.0


def test_every_image_envelope_reaches_the_models_decode(examples_server, scenes) -> None:
    image, truth = scenes[0]
    jpeg = encoded(image, "JPEG")
    url = f"{examples_server.url}/v1/models/detector/predict"
    raw = predict(examples_server, jpeg, "image/jpeg")
    multipart = httpx.post(url, files={"file": ("scene.jpg", jpeg, "image/jpeg")}, timeout=60)
    b64 = httpx.post(url, json={"image_b64": base64.b64encode(jpeg).decode()}, timeout=60)
    labels = [sorted(d["label"] for d in r.json()["predictions"]) for r in (raw, multipart, b64)]
    assert labels[0] == labels[1] == labels[2] == sorted(CLASSES[c] for c, _ in truth)


def test_v2_infer_takes_a_batch_of_pictures_as_tensors(examples_server, scenes) -> None:
    client = httpclient.InferenceServerClient(examples_server.url.removeprefix("http://"))
    try:
        meta = client.get_model_metadata("detector")
        assert meta["platform"] == "python"
        assert meta["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]
        assert [o["name"] for o in meta["outputs"]] == ["boxes", "scores", "classes"]
        pictures = np.stack([np.asarray(image) for image, _ in scenes[:2]])
        inp = httpclient.InferInput("image", list(pictures.shape), "UINT8")
        inp.set_data_from_numpy(pictures, binary_data=True)
        result = client.infer("detector", [inp])
    finally:
        client.close()
    boxes, classes = result.as_numpy("boxes"), result.as_numpy("classes")
    assert boxes.shape == (2, 5, 4) and classes.shape == (2, 5)
    for i, (_, truth) in enumerate(scenes[:2]):
        for class_index, box in truth:
            j = max(range(5), key=lambda k: iou(boxes[i, k].tolist(), box))
            assert iou(boxes[i, j].tolist(), box) > 0.6
            assert classes[i, j] == class_index


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"", "image/png", 422, "empty"),
        (b"not an image at all", "image/png", 422, "not a decodable"),
        (b"GIF89a....", "text/plain", 415, "not accepted"),
        (None, "image/png", 422, "needs at least 64x64"),
    ],
    ids=["empty", "garbage", "media-type", "too-small"],
)
def test_bad_input_is_a_clear_4xx_and_the_next_request_is_served(
    examples_server, scenes, body, content_type, status, says
) -> None:
    if body is None:  # decodes fine, but predict refuses it: smaller than one cell
        body = encoded(Image.new("RGB", (32, 48), (200, 30, 30)))
    answer = predict(examples_server, body, content_type)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]
    image, truth = scenes[1]
    assert len(predict(examples_server, encoded(image)).json()["predictions"]) == len(truth)


def test_a_v2_tensor_of_the_wrong_shape_is_a_400(examples_server) -> None:
    body = {
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 2, 2, 4], "data": [0] * 16}]
    }
    answer = httpx.post(f"{examples_server.url}/v2/models/detector/infer", json=body, timeout=30)
    assert answer.status_code == 400
    assert "does not match the model's [-1, -1, -1, 3]" in answer.json()["error"]


def test_a_bad_picture_among_concurrent_ones_fails_alone(examples_server, scenes) -> None:
    good = [encoded(image) for image, _ in scenes] * 2
    tiny = encoded(Image.new("RGB", (16, 16), (30, 200, 30)))
    bodies = [*good[:4], tiny, *good[4:]]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: predict(examples_server, body), bodies))
    assert answers[4].status_code == 422
    assert "needs at least 64x64" in answers[4].json()["error"]
    rest = [a for i, a in enumerate(answers) if i != 4]
    assert all(a.status_code == 200 for a in rest), [a.text for a in rest]
    counts = [len(a.json()["predictions"]) for a in rest]
    assert counts == [len(truth) for _, truth in scenes] * 2
