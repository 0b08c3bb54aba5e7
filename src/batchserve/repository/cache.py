"""The local cache of remote model files, written so that a half file is never loaded.

Every file is downloaded to a temporary name beside its final one, checked
(byte count, and MD5 against the ETag where the ETag is a plain MD5), flushed
to disk and only then renamed into place: a rename is atomic, so a reader sees
the old file or the whole new one. A folder counts as complete only once its
manifest (each file's ETag and size) is written, last; a crash mid-version
leaves no manifest, and such a folder is neither reused offline nor trusted.
A file whose ETag and size match the manifest is not downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from batchserve.errors import ModelLoadError

log = logging.getLogger(__name__)

MANIFEST = ".batchserve-manifest.json"
#: Temporary files older than this are leftovers of a crashed process.
STALE_PART_S = 3600.0
_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class RemoteObject:
    """One object of a bucket, as its listing describes it."""

    key: str
    size: int
    etag: str  # without the quotes S3 puts around it


class Sink(Protocol):
    """Where a download writes the object's bytes."""

    def write(self, data: bytes, /) -> int: ...


#: Writes the object's bytes into the sink; raises on any failure.
Download = Callable[[RemoteObject, Sink], None]


class SizeExceeded(ModelLoadError):
    """The server sent more bytes than the listing announced."""


class _CheckedWriter:
    """A file wrapper that hashes what passes through and refuses more than `limit` bytes."""

    def __init__(self, file: Sink, limit: int, what: str) -> None:
        self._file = file
        self._limit = limit
        self._what = what
        self.written = 0
        self.md5 = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes) -> int:
        self.written += len(data)
        if self.written > self._limit:
            raise SizeExceeded(f"{self._what}: more than the {self._limit} bytes listed")
        self.md5.update(data)
        return self._file.write(data)


def read_manifest(folder: Path) -> dict[str, dict[str, object]] | None:
    """The manifest of a complete folder, or None when the folder is not complete."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return files if isinstance(files, dict) else None


def sync_folder(folder: Path, objects: Mapping[str, RemoteObject], download: Download) -> Path:
    """Make `folder` hold exactly `objects` (relative path -> object), downloading only
    what changed; returns `folder` once it is complete."""
    old = read_manifest(folder) or {}
    changed = {rel: obj for rel, obj in objects.items() if not _cached(folder, rel, obj, old)}
    if not changed and set(old) == set(objects) and (folder / MANIFEST).exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    # The folder stops counting as complete before any of its files changes.
    (folder / MANIFEST).unlink(missing_ok=True)
    _remove_stale_parts(folder)
    for rel, obj in changed.items():
        _download_atomically(folder / rel, obj, download)
    for rel in set(old) - set(objects):
        (folder / rel).unlink(missing_ok=True)
    manifest = {rel: {"etag": obj.etag, "size": obj.size} for rel, obj in objects.items()}
    _write_atomically(folder / MANIFEST, json.dumps({"files": manifest}, indent=1).encode())
    reused = len(objects) - len(changed)
    log.debug("%s: %d file(s) downloaded, %d reused", folder, len(changed), reused)
    return folder


def _cached(folder: Path, rel: str, obj: RemoteObject, manifest: Mapping[str, object]) -> bool:
    entry = manifest.get(rel)
    if not isinstance(entry, dict):
        return False
    if entry.get("etag") != obj.etag or entry.get("size") != obj.size:
        return False
    try:
        return (folder / rel).stat().st_size == obj.size
    except OSError:
        return False


def _download_atomically(path: Path, obj: RemoteObject, download: Download) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with part.open("wb") as file:
            writer = _CheckedWriter(file, obj.size, obj.key)
            download(obj, writer)
            file.flush()
            os.fsync(file.fileno())
        if writer.written != obj.size:
            raise ModelLoadError(
                f"{obj.key}: download stopped at {writer.written} of {obj.size} bytes"
            )
        if _PLAIN_MD5.match(obj.etag) and writer.md5.hexdigest() != obj.etag:
            raise ModelLoadError(f"{obj.key}: content does not match its ETag {obj.etag}")
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with part.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)


def _remove_stale_parts(folder: Path) -> None:
    cutoff = time.time() - STALE_PART_S
    for part in folder.rglob(".*.part"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
        except OSError:
            pass
