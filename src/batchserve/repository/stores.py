"""How a `--repository` argument becomes a store (a folder, or `s3://bucket/prefix`), and
how several stores are listed as one repository."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from batchserve.repository.local_store import LocalStore
from batchserve.repository.s3_store import S3Store
from batchserve.repository.store import ModelListing, ModelStore

log = logging.getLogger(__name__)

#: Every store's listing: model -> (the store that has it first, its listing).
Scan = dict[str, tuple[ModelStore, ModelListing]]


def default_cache_dir() -> Path:
    """Where fetched versions are kept: $BATCHSERVE_CACHE_DIR/models, else
    ~/.cache/batchserve/models."""
    root = os.environ.get("BATCHSERVE_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "batchserve") / "models"


def open_store(
    spec: str | Path, *, cache_dir: Path | None = None, endpoint_url: str | None = None
) -> ModelStore:
    """`s3://bucket/prefix` becomes an S3 store (boto3 is imported only then), anything
    else a local folder."""
    text = str(spec)
    if text.startswith("s3://"):
        return S3Store.from_url(
            text, cache_dir=cache_dir or default_cache_dir(), endpoint_url=endpoint_url
        )
    return LocalStore(Path(text))


def scan_stores(
    stores: Sequence[ModelStore], known: Mapping[str, tuple[ModelStore, ModelListing]]
) -> tuple[Scan, list[ModelStore]]:
    """Every store's listing, in order; the first store that has a model wins. A store
    that cannot be listed keeps its models as `known` has them, and is returned among
    the unreachable ones (its models are not gone, only out of sight)."""
    found: Scan = {}
    unreachable: list[ModelStore] = []
    for store in stores:
        try:
            listings = store.snapshot()
        except Exception as exc:
            log.error("listing %s failed: %s", store, exc)
            unreachable.append(store)
            listings = {n: listing for n, (s, listing) in known.items() if s is store}
        for name, listing in listings.items():
            if name in found:
                if name not in known:
                    log.warning("model %s in %s is shadowed by an earlier store", name, store)
                continue
            found[name] = (store, listing)
    return found, unreachable
