"""The S3 store against a real S3 server: moto in server mode on a free 127.0.0.1 port."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from batchserve.errors import ModelLoadError
from batchserve.repository.cache import read_manifest
from batchserve.repository.manager import ModelManager
from batchserve.repository.s3_store import S3Store, parse_s3_url
from batchserve.repository.store import StoreUnavailable
from tests.live_server import DEMO_REPOSITORY, LiveServer
from tests.repository.builders import X, add_version, expected, index, state, wait_for
from tests.repository.moto_s3 import MotoS3


@pytest.fixture
def s3(aws_env) -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


def _store(s3: MotoS3, url: str, cache: Path) -> tuple[S3Store, list[str]]:
    """A store whose client records every object it downloads."""
    client = s3.client()
    fetched: list[str] = []
    client.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: fetched.append(params["Key"])
    )
    bucket, prefix = parse_s3_url(url)
    return S3Store(bucket, prefix, cache_dir=cache, client=client), fetched


def test_lists_fetches_and_reuses_what_did_not_change(s3, tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "m", 1)
    add_version(repo, "m", 2)
    (repo / "m" / "labels.txt").write_text("a\nb\nc\n")
    add_version(repo, "other", 5)
    (repo / "not_a_model" / "1").mkdir(parents=True)
    (repo / "not_a_model" / "1" / "x.bin").write_bytes(b"x")
    s3.upload(repo, "models-bucket", "team/prod")
    store, fetched = _store(s3, "s3://models-bucket/team/prod/", tmp_path / "cache")

    snapshot = store.snapshot()
    assert sorted(snapshot) == ["m", "other"]
    assert sorted(snapshot["m"].versions) == [1, 2]
    model_dir = store.model_dir("m")
    assert (model_dir / "labels.txt").read_text() == "a\nb\nc\n"
    v2 = store.fetch("m", 2)
    assert (v2 / "model.onnx").read_bytes() == (repo / "m" / "2" / "model.onnx").read_bytes()
    assert v2.is_relative_to(tmp_path / "cache")
    assert sorted(fetched) == [
        "team/prod/m/2/model.onnx",
        "team/prod/m/labels.txt",
        "team/prod/m/model.yaml",
    ]

    store.snapshot()
    assert store.fetch("m", 2) == v2
    assert store.model_dir("m") == model_dir
    assert len(fetched) == 3  # same ETags: served from the cache

    add_version(repo, "m", 2, seed=7)  # new bytes under the same key
    s3.upload(repo / "m" / "2", "models-bucket", "team/prod/m/2")
    assert store.snapshot()["m"].versions[2] != snapshot["m"].versions[2]
    store.fetch("m", 2)
    assert fetched[3:] == ["team/prod/m/2/model.onnx"]  # only what changed


def test_an_object_replaced_after_the_listing_is_not_fetched_half_new(s3, tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "m", 1)
    s3.upload(repo, "race-bucket")
    store, _ = _store(s3, "s3://race-bucket", tmp_path / "cache")
    store.snapshot()
    add_version(repo, "m", 1, seed=9)
    s3.upload(repo, "race-bucket")  # replaced between listing and fetching
    with pytest.raises(ModelLoadError, match="changed while fetching"):
        store.fetch("m", 1)
    assert not (tmp_path / "cache" / "s3" / "race-bucket" / "m" / "1" / "model.onnx").exists()
    store.snapshot()  # the next scan sees the new ETag and fetches the new bytes
    fetched = store.fetch("m", 1) / "model.onnx"
    assert fetched.read_bytes() == (repo / "m" / "1" / "model.onnx").read_bytes()


def test_keys_that_would_escape_the_cache_are_ignored(tmp_path):
    class Pages:
        def paginate(self, **_):
            yield {
                "Contents": [
                    {"Key": "p/m/model.yaml", "Size": 1, "ETag": '"a"'},
                    {"Key": "p/m/1/../../../../evil.onnx", "Size": 1, "ETag": '"b"'},
                    {"Key": "p/m/1/model.onnx", "Size": 1, "ETag": '"c"'},
                    {"Key": "p/../x/model.yaml", "Size": 1, "ETag": '"d"'},
                    {"Key": "p/m/01/model.onnx", "Size": 1, "ETag": '"e"'},
                ]
            }

    class Client:
        def get_paginator(self, _):
            return Pages()

    store = S3Store("bucket", "p", cache_dir=tmp_path, client=Client())
    snapshot = store.snapshot()
    assert list(snapshot) == ["m"]
    assert list(snapshot["m"].versions) == [1]
    assert store._tree is not None
    assert list(store._tree["m"][1]) == ["model.onnx"]


def test_without_the_bucket_a_restart_serves_complete_cached_versions(s3, tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "m", 1)
    add_version(repo, "m", 2)
    s3.upload(repo, "gone-bucket", "r")
    cache = tmp_path / "cache"
    store, _ = _store(s3, "s3://gone-bucket/r", cache)
    store.snapshot()
    store.model_dir("m")
    store.fetch("m", 2)
    (cache / "s3" / "gone-bucket" / "r" / "m" / "1").mkdir()  # an incomplete leftover
    s3.stop()

    restarted, _ = _store(s3, "s3://gone-bucket/r", cache)
    snapshot = restarted.snapshot()
    assert list(snapshot["m"].versions) == [2]  # only what is complete
    assert read_manifest(restarted.fetch("m", 2)) is not None
    with pytest.raises(StoreUnavailable):
        restarted.fetch("m", 1)

    manager = ModelManager([restarted])
    try:
        manager.load_all()
        y = manager.get("m").submit({"x": X}).result(timeout=10).outputs["y"]
        np.testing.assert_allclose(y, expected(2), rtol=1e-5)
    finally:
        manager.stop(drain=False, timeout=5)


# -- the server, serving the demo model from the bucket ---------------------------------


def _demo() -> Path:
    demo = DEMO_REPOSITORY / "shapes"
    if not (demo / "1" / "model.onnx").is_file():
        pytest.skip("the demo model (models/shapes) has not been built")
    return demo


def _demo_versions(tmp_path: Path, versions: list[int]) -> Path:
    """A repository holding the demo model under the given version numbers."""
    demo = _demo()
    repo = tmp_path / "demo-repo"
    target = repo / "shapes"
    target.mkdir(parents=True, exist_ok=True)
    for path in demo.iterdir():
        if path.is_file():
            shutil.copy(path, target / path.name)
    for version in versions:
        (target / str(version)).mkdir(exist_ok=True)
        shutil.copy(demo / "1" / "model.onnx", target / str(version) / "model.onnx")
    return repo


def _infer_demo(url: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(served version, server's logits, ONNX Runtime's own logits) for one random input."""
    session = ort.InferenceSession(str(_demo() / "1" / "model.onnx"))
    spec = session.get_inputs()[0]
    shape = [1, *spec.shape[1:]]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    body = {
        "inputs": [
            {"name": spec.name, "shape": shape, "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }
    r = httpx.post(f"{url}/v2/models/shapes/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    served = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    return r.json()["model_version"], served, session.run(None, {spec.name: x})[0]


def test_serves_the_demo_from_s3_picks_up_a_new_version_and_survives_losing_s3(
    s3, aws_env, tmp_path
):
    s3.upload(_demo_versions(tmp_path, [1, 2]), "demo-bucket", "models")
    cache = tmp_path / "cache"
    args = [
        "--s3-endpoint-url", s3.endpoint,
        "--cache-dir", str(cache),
    ]  # fmt: skip
    url = "s3://demo-bucket/models"
    with LiveServer([url], *args, "--poll-interval", "0.5", env=aws_env) as server:  # type: ignore[arg-type]
        version, served, reference = _infer_demo(server.url)
        assert version == "2"  # latest: 1
        np.testing.assert_allclose(served, reference, rtol=1e-4, atol=1e-4)

        s3.upload(_demo_versions(tmp_path, [3]), "demo-bucket", "models")
        wait_for(lambda: state(server.url, "shapes", 3) == "READY", 60, "version 3 from S3")
        assert _infer_demo(server.url)[0] == "3"
        assert (cache / "s3" / "demo-bucket" / "models" / "shapes" / "3" / "model.onnx").is_file()

    s3.stop()
    with LiveServer([url], *args, env=aws_env) as server:  # type: ignore[arg-type]
        version, served, reference = _infer_demo(server.url)
        assert version == "3"
        np.testing.assert_allclose(served, reference, rtol=1e-4, atol=1e-4)
        assert index(server.url)[("shapes", "3")]["state"] == "READY"
    assert "serving what is known and cached" in server.output


def test_the_endpoint_can_come_from_the_aws_environment(s3, tmp_path, monkeypatch):
    add_version(tmp_path / "repo", "m", 1)
    s3.upload(tmp_path / "repo", "env-bucket")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    store = S3Store.from_url("s3://env-bucket", cache_dir=tmp_path / "cache")
    assert list(store.snapshot()) == ["m"]
