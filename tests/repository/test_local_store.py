from __future__ import annotations

import os

import pytest

from batchserve.errors import ModelNotFound
from batchserve.repository.local_store import LocalStore
from batchserve.repository.stores import open_store
from tests.repository.builders import add_version


def test_lists_models_with_a_model_yaml_and_their_numbered_versions(tmp_path):
    add_version(tmp_path, "a", 1)
    add_version(tmp_path, "a", 3)
    add_version(tmp_path, "b", 2)
    (tmp_path / "a" / "notes").mkdir()  # not a version
    (tmp_path / "no_config" / "1").mkdir(parents=True)  # not a model
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "model.yaml").write_text("")

    store = LocalStore(tmp_path)
    snapshot = store.snapshot()
    assert sorted(snapshot) == ["a", "b"]
    assert sorted(snapshot["a"].versions) == [1, 3]
    assert store.list_versions("a") == [1, 3]
    assert store.fetch("b", 2) == tmp_path / "b" / "2"
    with pytest.raises(ModelNotFound):
        store.fetch("a", 2)
    with pytest.raises(ModelNotFound):
        store.model_dir("no_config")


def test_signatures_change_with_the_files_they_cover(tmp_path):
    add_version(tmp_path, "a", 1)
    add_version(tmp_path, "a", 2)
    store = LocalStore(tmp_path)
    before = store.snapshot()["a"]
    assert store.snapshot()["a"] == before  # stable while nothing changes

    artifact = tmp_path / "a" / "2" / "model.onnx"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    after = store.snapshot()["a"]
    assert after.versions[2] != before.versions[2]
    assert after.versions[1] == before.versions[1]
    assert after.config_signature == before.config_signature

    config = tmp_path / "a" / "model.yaml"
    config.write_text(config.read_text() + "warmup: false\n")
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert store.snapshot()["a"].config_signature != after.config_signature


def test_open_store_tells_a_folder_from_a_bucket(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert repr(open_store("s3://bucket/some/prefix", cache_dir=tmp_path)) == (
        "S3Store('s3://bucket/some/prefix')"
    )
