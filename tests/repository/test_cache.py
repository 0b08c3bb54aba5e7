from __future__ import annotations

import hashlib

import pytest

from batchserve.errors import ModelLoadError
from batchserve.repository.cache import MANIFEST, RemoteObject, read_manifest, sync_folder


class FakeBucket:
    """Objects by key; counts downloads; can be told to cut a download short."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.data = {f"m/1/{rel}": body for rel, body in files.items()}
        self.downloads = 0
        self.cut_after: int | None = None
        self.fail_after: int | None = None

    def objects(self) -> dict[str, RemoteObject]:
        return {
            key.removeprefix("m/1/"): RemoteObject(key, len(body), hashlib.md5(body).hexdigest())
            for key, body in self.data.items()
        }

    def download(self, obj: RemoteObject, sink) -> None:
        self.downloads += 1
        body = self.data[obj.key]
        if self.fail_after is not None:
            sink.write(body[: self.fail_after])
            raise ConnectionResetError("connection reset mid-body")
        sink.write(body if self.cut_after is None else body[: self.cut_after])


def test_downloads_once_then_reuses_what_did_not_change(tmp_path):
    bucket = FakeBucket({"model.onnx": b"weights" * 1000, "extra/data.bin": b"x" * 10})
    folder = sync_folder(tmp_path / "v1", bucket.objects(), bucket.download)
    assert (folder / "model.onnx").read_bytes() == b"weights" * 1000
    assert (folder / "extra" / "data.bin").read_bytes() == b"x" * 10
    assert set(read_manifest(folder)) == {"model.onnx", "extra/data.bin"}
    assert bucket.downloads == 2

    sync_folder(folder, bucket.objects(), bucket.download)
    assert bucket.downloads == 2  # ETags unchanged: nothing fetched

    bucket.data["m/1/model.onnx"] = b"new weights"
    sync_folder(folder, bucket.objects(), bucket.download)
    assert bucket.downloads == 3  # only the changed file
    assert (folder / "model.onnx").read_bytes() == b"new weights"


@pytest.mark.parametrize("failure", ["truncated", "reset"])
def test_a_failed_download_leaves_no_half_file_and_no_manifest(tmp_path, failure):
    bucket = FakeBucket({"model.onnx": b"w" * 5000})
    if failure == "truncated":
        bucket.cut_after = 1234  # the connection closed early, without an error
    else:
        bucket.fail_after = 1234
    with pytest.raises((ModelLoadError, ConnectionResetError)):
        sync_folder(tmp_path / "v1", bucket.objects(), bucket.download)
    assert not (tmp_path / "v1" / "model.onnx").exists()
    assert read_manifest(tmp_path / "v1") is None
    assert [p.name for p in (tmp_path / "v1").iterdir()] == []  # no temporary left either

    bucket.cut_after = bucket.fail_after = None  # the next try succeeds
    folder = sync_folder(tmp_path / "v1", bucket.objects(), bucket.download)
    assert (folder / "model.onnx").read_bytes() == b"w" * 5000


def test_a_replaced_file_that_fails_keeps_the_folder_incomplete(tmp_path):
    bucket = FakeBucket({"model.onnx": b"old"})
    folder = sync_folder(tmp_path / "v1", bucket.objects(), bucket.download)
    bucket.data["m/1/model.onnx"] = b"new and longer"
    bucket.cut_after = 3
    with pytest.raises(ModelLoadError):
        sync_folder(folder, bucket.objects(), bucket.download)
    # The old file is intact (the rename never happened), but nothing vouches for it.
    assert (folder / "model.onnx").read_bytes() == b"old"
    assert not (folder / MANIFEST).exists()


def test_content_that_does_not_match_the_etag_is_refused(tmp_path):
    bucket = FakeBucket({"model.onnx": b"the real bytes"})
    objects = bucket.objects()
    bucket.data["m/1/model.onnx"] = b"the fake bytes"  # same size, other content
    with pytest.raises(ModelLoadError, match="ETag"):
        sync_folder(tmp_path / "v1", objects, bucket.download)
    assert not (tmp_path / "v1" / "model.onnx").exists()


def test_more_bytes_than_listed_are_refused(tmp_path):
    bucket = FakeBucket({"model.onnx": b"short"})
    objects = bucket.objects()
    bucket.data["m/1/model.onnx"] = b"much much longer"
    with pytest.raises(ModelLoadError, match="more than"):
        sync_folder(tmp_path / "v1", objects, bucket.download)
