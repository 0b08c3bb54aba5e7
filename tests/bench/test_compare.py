"""bench/compare.py's pieces that need no server: bodies, rows for a workload, selection."""

from __future__ import annotations

import base64
import json

import compare
import numpy as np
import pytest
import tritonclient.http as httpclient

from batchserve.codecs.v2 import HEADER_LENGTH_HEADER, decode_infer_request
from tests.bench import ROOT

JPEG = ROOT / "samples" / "bench_640x480.jpg"


def workload(route: str = "image", model: str = "demo") -> compare.Workload:
    if route == "tensor":
        tensor = np.linspace(-1, 1, 3 * 64 * 64, dtype=np.float32).reshape(1, 3, 64, 64)
        return compare.Workload(model, "tensor", "bench", "hand", JPEG, tensor.tobytes(),
                                tensor.shape, "input")  # fmt: skip
    return compare.Workload(model, "image", "bench", "hand", JPEG)


def by_server(configs):
    return {(c.server, c.label): c for c in configs}


def test_the_v2_body_is_byte_for_byte_tritonclients():
    tensor = np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)
    infer_input = httpclient.InferInput("input", [1, 3, 2, 2], "FP32")
    infer_input.set_data_from_numpy(tensor, binary_data=True)
    theirs, length = httpclient.InferenceServerClient.generate_request_body([infer_input])
    ours = compare.v2_binary_body("input", tensor.shape, tensor.tobytes())
    assert ours == (theirs, length)
    request = decode_infer_request(ours[0], ours[1], None)
    np.testing.assert_array_equal(request.inputs["input"], tensor)
    assert request.binary_data_output


def test_each_body_kind(tmp_path):
    w = workload("tensor")
    config = compare.Config("x", "y", lambda p: [], path="/tensor", body="tensor")
    post = compare.request_for(config, w, 8080)
    assert post.url == "http://127.0.0.1:8080/tensor" and post.body == w.tensor
    b64 = compare.request_for(compare.Config("x", "y", lambda p: [], body="b64tensor"), w, 1)
    assert base64.b64decode(json.loads(b64.body)["tensor_b64"]) == w.tensor
    v2 = compare.request_for(compare.Config("x", "y", lambda p: [], body="v2"), w, 1)
    ((name, length),) = v2.headers
    assert name == HEADER_LENGTH_HEADER and v2.body[int(length) :] == w.tensor
    image = compare.request_for(compare.Config("x", "y", lambda p: []), workload(), 1)
    assert image.content_type == "image/jpeg" and image.body == JPEG.read_bytes()
    target = compare.bench_target(image)
    assert target.request(0).endswith(JPEG.read_bytes())
    assert b"Content-Type: image/jpeg" in target.request(0)


def test_the_tensor_route_for_the_demo_model(tmp_path):
    configs = by_server(compare.configurations(True, tmp_path, workload("tensor")))
    ours = configs[("batchserve", "default config")]
    assert ours.path == "/v2/models/shapes/infer" and ours.body == "v2"
    repository = ours.argv(1234)[ours.argv(1234).index("--repository") + 1]
    assert [p.name for p in (tmp_path / repository).iterdir()] == ["shapes"]
    flask = next(c for (s, _), c in configs.items() if s == "Flask+Gunicorn+ORT")
    assert (flask.path, flask.body, flask.unsupported) == ("/tensor", "tensor", None)
    lit = next(c for (s, _), c in configs.items() if s == "LitServe")
    assert lit.body == "b64tensor" and "--route tensor" in " ".join(lit.argv(1))
    seed = next(c for (s, _), c in configs.items() if s.startswith("seed"))
    assert seed.unsupported == "the seed's app has no tensor route"
    assert all(c.unsupported for c in configs.values() if c.group == "tf")


def test_the_image_route_for_mobilenet_is_as_before(tmp_path):
    configs = by_server(compare.configurations(False, tmp_path, workload(model="mobilenet")))
    ours = configs[("batchserve", "default config")]
    assert ours.path == compare.PREDICT and str(compare.MODEL_DIR.parent) in ours.argv(1)
    assert not any(c.unsupported for c in configs.values())
    assert sum(s == "Flask+Gunicorn+ORT" for s, _ in configs) == 3
    assert configs[("batchserve TFLite", "default config, LiteRT (no TensorFlow in the process)")
                   ].path == "/v1/models/mobilenet_tflite/predict"  # fmt: skip


def test_only_and_skip_by_substring(tmp_path):
    configs = compare.configurations(True, tmp_path, workload())
    servers = {c.server for c in compare.select(configs, "batchserve,flask", "ray,tf")}
    assert servers == {"batchserve", "seed (Flask+Gunicorn+torch)", "Flask+Gunicorn+ORT"}
    assert {c.server for c in compare.select(configs, None, "batchserve")}.isdisjoint(
        {"batchserve", compare.ON_RAY, "batchserve TFLite"}
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], True),
        (["--only", "batchserve"], False),
        (["--only", "ceiling,batchserve"], True),
        (["--skip", "Ceiling"], False),
        (["--no-ceiling"], False),
    ],
)
def test_when_the_ceiling_runs(argv, expected):
    assert compare.wants_ceiling(compare.parse_args(argv)) is expected


def test_wrk_is_an_alias_and_a_missing_wrk_is_explained(monkeypatch, capsys, tmp_path):
    assert compare.parse_args(["--wrk"]).client == "wrk"
    monkeypatch.setattr(compare, "find_wrk", lambda: None)
    assert compare.main(["--client", "wrk", "--out", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "make bench-tools" in out and "apt-get install wrk" in out
