"""Triton's repository API on a live server, and `batchserve models` against it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from batchserve.cli import main
from tests.live_server import LiveServer
from tests.repository.builders import add_version, answer, expected, index, infer_body

TOKEN = "repository-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-repo")
    add_version(root, "a", 1)
    add_version(root, "a", 2)
    add_version(root, "b", 1, seed=5)
    add_version(root, "bad", 1, model_yaml="backend: caffe2\n")
    return root


@pytest.fixture(scope="module")
def server(repo) -> Iterator[LiveServer]:
    with LiveServer([repo], "--auth-token", TOKEN, wait_ready=False) as live:
        live.wait_ready(60, headers=AUTH)
        yield live


def _post(server: LiveServer, path: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", headers=AUTH, timeout=60, **kwargs)


def _infer(server: LiveServer, name: str) -> httpx.Response:
    return _post(server, f"/v2/models/{name}/infer", json=infer_body())


def test_index_lists_every_version_with_its_state_and_reason(server):
    entries = _post(server, "/v2/repository/index").json()
    by_key = {(e["name"], e["version"]): e for e in entries}
    assert by_key[("a", "2")]["state"] == "READY"
    assert by_key[("b", "1")]["state"] == "READY"
    assert ("a", "1") not in by_key  # not in the version policy (latest: 1)
    assert by_key[("bad", "")]["state"] == "UNAVAILABLE"
    assert "backend" in by_key[("bad", "")]["reason"]
    assert all(set(e) == {"name", "version", "state", "reason"} for e in entries)
    ready = _post(server, "/v2/repository/index", json={"ready": True}).json()
    assert {(e["name"], e["version"]) for e in ready} == {("a", "2"), ("b", "1")}
    assert httpx.post(f"{server.url}/v2/repository/index").status_code == 401


def test_unload_then_load(server):
    assert _post(server, "/v2/repository/models/b/unload").json() == {}
    entry = {(e["name"], e["version"]): e for e in _post(server, "/v2/repository/index").json()}
    assert entry[("b", "1")]["state"] == "UNAVAILABLE"
    refused = _infer(server, "b")
    assert refused.status_code == 404 and "unloaded" in refused.json()["error"]
    np.testing.assert_allclose(answer(_infer(server, "a")), expected(2), rtol=1e-5)

    assert _post(server, "/v2/repository/models/b/load").json() == {}
    np.testing.assert_allclose(answer(_infer(server, "b")), expected(5), rtol=1e-5)


def test_load_picks_up_a_model_added_after_start(server, repo):
    add_version(repo, "late", 1, seed=8)
    assert _infer(server, "late").status_code == 404  # no polling: not known yet
    assert _post(server, "/v2/repository/models/late/load").status_code == 200
    np.testing.assert_allclose(answer(_infer(server, "late")), expected(8), rtol=1e-5)


def test_errors(server):
    unknown = _post(server, "/v2/repository/models/nope/unload")
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    assert _post(server, "/v2/repository/models/nope/load").status_code == 404
    bad = _post(server, "/v2/repository/models/bad/load")
    assert bad.status_code == 400
    assert "model.yaml" in bad.json()["error"] and "backend" in bad.json()["error"]
    overrides = _post(server, "/v2/repository/models/a/load", json={"parameters": {"config": "{}"}})
    assert overrides.status_code == 400
    assert _post(server, "/v2/repository/index", content=b"[1, 2").status_code == 400


def test_the_models_command(server, capsys):
    common = ["--url", server.url, "--token", TOKEN]
    assert main(["models", "list", *common]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["MODEL", "VERSION", "STATE", "REASON"]
    assert ["a", "2", "READY"] in [line.split()[:3] for line in table]

    assert main(["models", "unload", "a", *common]) == 0
    assert "a: unloaded" in capsys.readouterr().out
    assert index(server.url, AUTH)[("a", "2")]["state"] == "UNAVAILABLE"
    assert main(["models", "load", "a", *common]) == 0
    assert index(server.url, AUTH)[("a", "2")]["state"] == "READY"

    assert main(["models", "load", "bad", *common]) == 1
    assert "400" in capsys.readouterr().err
    assert main(["models", "list", "--url", server.url]) == 1  # no token
    assert "401" in capsys.readouterr().err
    assert main(["models", "unload", *common]) == 2  # which model?
    assert main(["models", "list", "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot reach" in capsys.readouterr().err
