"""What every model store offers, and how a `--repository` argument becomes one.

A store lists models and their versions and makes one version's files
available as a local folder. The manager compares listings from one scan to
the next by their signatures, so a store says *that* something changed without
the manager knowing how (file times for a folder, ETags for a bucket).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from batchserve.errors import ModelLoadError, ModelNotFound


class StoreUnavailable(ModelLoadError):
    """The store could not be reached. Unlike a broken file this passes by itself, so the
    manager retries the load on the next scan instead of waiting for the files to change."""


@dataclass(frozen=True)
class ModelListing:
    """One model as a store lists it."""

    name: str
    #: Changes whenever a file beside the version folders (model.yaml, labels) changes.
    config_signature: str
    #: version -> a signature that changes whenever a file of that version changes.
    versions: Mapping[int, str] = field(default_factory=dict)


class ModelStore(Protocol):
    """A model repository: a local folder or an S3-compatible bucket."""

    def snapshot(self) -> dict[str, ModelListing]:
        """Every model of the store, listed in one pass."""
        ...

    def model_dir(self, name: str) -> Path:
        """A local folder holding the model's model.yaml and the files beside it."""
        ...

    def fetch(self, name: str, version: int) -> Path:
        """A local folder holding this version's files, complete."""
        ...


def list_models(store: ModelStore) -> list[str]:
    return sorted(store.snapshot())


def list_versions(store: ModelStore, name: str) -> list[int]:
    listing = store.snapshot().get(name)
    if listing is None:
        raise ModelNotFound(f"model {name!r} is not in {store}")
    return sorted(listing.versions)


def default_cache_dir() -> Path:
    """Where fetched versions are kept: $BATCHSERVE_CACHE_DIR/models, else
    ~/.cache/batchserve/models."""
    root = os.environ.get("BATCHSERVE_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "batchserve") / "models"


def open_store(
    spec: str | Path, *, cache_dir: Path | None = None, endpoint_url: str | None = None
) -> ModelStore:
    """`s3://bucket/prefix` becomes an S3 store (boto3 imported only then), anything
    else a local folder."""
    text = str(spec)
    if text.startswith("s3://"):
        from batchserve.repository.s3_store import S3Store

        return S3Store.from_url(
            text, cache_dir=cache_dir or default_cache_dir(), endpoint_url=endpoint_url
        )
    from batchserve.repository.local_store import LocalStore

    return LocalStore(Path(text))
