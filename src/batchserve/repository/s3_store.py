"""A model repository in an S3-compatible bucket, fetched version by version into a local cache.

`s3://bucket/prefix` holds the same layout as a folder: `prefix/<model>/model.yaml`,
files beside it, and `prefix/<model>/<version>/...`. One paginated listing per
scan gives every model, version and ETag; a version is downloaded only when it
is loaded, and only the files whose ETag changed since they were cached.

When the bucket cannot be reached the store keeps serving what it knows: the
last listing it got in this process, or, right after a restart, the complete
folders of its cache. Endpoint, region and credentials come from the usual
AWS environment and config files (boto3's own chain); `endpoint_url`
overrides the endpoint for S3-compatible services (MinIO, Ceph, moto).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from batchserve.errors import ConfigError, ModelLoadError, ModelNotFound
from batchserve.repository.cache import RemoteObject, Sink, read_manifest, sync_folder
from batchserve.repository.store import ModelListing, StoreUnavailable

log = logging.getLogger(__name__)

#: A bucket listing stops here: a repository is a few hundred files, not a data lake.
MAX_OBJECTS = 100_000
CHUNK = 1 << 20

#: model -> (None for the files beside the versions | version) -> relative path -> object
Tree = dict[str, dict[int | None, dict[str, RemoteObject]]]


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> ("bucket", "some/prefix")."""
    if not url.startswith("s3://"):
        raise ConfigError(f"{url!r} is not an s3://bucket/prefix URL")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    if not bucket or any(part in ("", ".", "..") for part in parts):
        raise ConfigError(f"{url!r}: expected s3://bucket or s3://bucket/prefix")
    return bucket, prefix


def make_client(endpoint_url: str | None = None) -> Any:
    """An S3 client with bounded connect and read times. boto3 is the `s3` extra."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ConfigError("s3:// repositories need boto3: pip install 'batchserve[s3]'") from exc
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    # A session of its own: boto3's default session is not safe to share between threads.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)


class S3Store:
    """Lists `s3://bucket/prefix` and fetches versions into `cache_dir/s3/bucket/prefix`."""

    def __init__(self, bucket: str, prefix: str, *, cache_dir: Path, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._client = client
        self._cache = cache_dir / "s3" / bucket / prefix if prefix else cache_dir / "s3" / bucket
        self._tree: Tree | None = None  # the last listing that succeeded
        self._reachable = True
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, cache_dir: Path, endpoint_url: str | None = None) -> S3Store:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, cache_dir=cache_dir, client=make_client(endpoint_url))

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}')"

    @property
    def cache_dir(self) -> Path:
        return self._cache

    # -- ModelStore ------------------------------------------------------------------

    def snapshot(self) -> dict[str, ModelListing]:
        try:
            tree = self._list()
        except StoreUnavailable as exc:
            return self._offline_snapshot(exc)
        with self._lock:
            self._tree = tree
            if not self._reachable:
                log.warning("%s is reachable again", self)
            self._reachable = True
        return {name: _listing(name, groups) for name, groups in tree.items()}

    def model_dir(self, name: str) -> Path:
        return self._sync(name, None)

    def fetch(self, name: str, version: int) -> Path:
        return self._sync(name, version)

    # -- listing ---------------------------------------------------------------------

    def _list(self) -> Tree:
        from botocore.exceptions import BotoCoreError, ClientError

        start = f"{self.prefix}/" if self.prefix else ""
        tree: Tree = {}
        count = 0
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    count += 1
                    if count > MAX_OBJECTS:
                        log.warning("%s: listing stopped at %d objects", self, MAX_OBJECTS)
                        return _with_configs(tree)
                    _place(tree, item, start)
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailable(f"{self}: listing failed: {exc}") from exc
        return _with_configs(tree)

    def _offline_snapshot(self, exc: StoreUnavailable) -> dict[str, ModelListing]:
        with self._lock:
            if self._reachable:
                log.warning("%s; serving what is known and cached until it answers", exc)
            self._reachable = False
            tree = self._tree
        if tree is not None:
            return {name: _listing(name, groups) for name, groups in tree.items()}
        return self._cached_listing()

    def _cached_listing(self) -> dict[str, ModelListing]:
        """What a restart finds in the cache: complete folders only."""
        found: dict[str, ModelListing] = {}
        if not self._cache.is_dir():
            return found
        for model_dir in sorted(p for p in self._cache.iterdir() if p.is_dir()):
            beside = read_manifest(model_dir)
            if beside is None or "model.yaml" not in beside:
                continue
            versions = {}
            for version_dir in model_dir.iterdir():
                manifest = read_manifest(version_dir) if version_dir.name.isdigit() else None
                if manifest is not None:
                    versions[int(version_dir.name)] = _manifest_signature(manifest)
            found[model_dir.name] = ModelListing(
                model_dir.name, _manifest_signature(beside), versions
            )
        return found

    # -- fetching --------------------------------------------------------------------

    def _sync(self, name: str, version: int | None) -> Path:
        folder = self._cache / name if version is None else self._cache / name / str(version)
        what = f"{name}" if version is None else f"{name} v{version}"
        with self._lock:
            groups = self._tree.get(name) if self._tree is not None else None
        objects = groups.get(version) if groups is not None else None
        if objects is None:
            if groups is not None:
                raise ModelNotFound(f"{self}: {what} is not in the bucket")
            if read_manifest(folder) is not None:
                log.info("%s: %s from the cache (%s)", self, what, folder)
                return folder
            raise StoreUnavailable(f"{self}: {what} is neither listed nor cached")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return sync_folder(folder, objects, self._download)
        except (BotoCoreError, ClientError) as exc:
            if _is_not_found(exc) or _is_precondition(exc):
                # Gone or replaced since the listing: the next scan lists what is there now.
                raise ModelLoadError(f"{self}: {what} changed while fetching: {exc}") from exc
            raise StoreUnavailable(f"{self}: fetching {what} failed: {exc}") from exc

    def _download(self, obj: RemoteObject, sink: Sink) -> None:
        # If-Match: the bytes are those of the ETag we listed, or the fetch fails.
        response = self._client.get_object(Bucket=self.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')
        body = response["Body"]
        try:
            for chunk in body.iter_chunks(CHUNK):
                sink.write(chunk)
        finally:
            body.close()


def _place(tree: Tree, item: Mapping[str, Any], start: str) -> None:
    """Put one listed object where it belongs in the tree; ignore what fits no layout."""
    key: str = item["Key"]
    if key.endswith("/"):
        return  # a "folder" marker some tools create
    parts = PurePosixPath(key[len(start) :]).parts
    if len(parts) < 2 or any(p in (".", "..") or "\\" in p for p in parts):
        return  # never let a key name a path outside the cache
    name, rest = parts[0], parts[1:]
    if name.startswith("."):
        return
    obj = RemoteObject(key=key, size=int(item["Size"]), etag=str(item["ETag"]).strip('"'))
    groups = tree.setdefault(name, {})
    if len(rest) == 1:
        groups.setdefault(None, {})[rest[0]] = obj
    elif rest[0].isdigit() and not rest[0].startswith("0"):
        groups.setdefault(int(rest[0]), {})["/".join(rest[1:])] = obj


def _with_configs(tree: Tree) -> Tree:
    """Only folders with a model.yaml are models, as in a local repository."""
    return {name: g for name, g in tree.items() if "model.yaml" in g.get(None, {})}


def _listing(name: str, groups: Mapping[int | None, Mapping[str, RemoteObject]]) -> ModelListing:
    versions = {v: _signature(files) for v, files in groups.items() if v is not None}
    return ModelListing(name, _signature(groups.get(None, {})), versions)


def _signature(files: Mapping[str, RemoteObject]) -> str:
    return _digest((rel, obj.etag, obj.size) for rel, obj in files.items())


def _manifest_signature(manifest: Mapping[str, Any]) -> str:
    return _digest((rel, e.get("etag"), e.get("size")) for rel, e in manifest.items())


def _digest(entries: Iterable[tuple[object, ...]]) -> str:
    """The same files give the same signature, from the bucket or from the cache."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: str(e[0])):
        digest.update("\0".join(str(x) for x in entry).encode() + b"\n")
    return digest.hexdigest()[:16]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_not_found(exc: Exception) -> bool:
    return _error_code(exc) in ("NoSuchKey", "404")


def _is_precondition(exc: Exception) -> bool:
    return _error_code(exc) in ("PreconditionFailed", "412")
