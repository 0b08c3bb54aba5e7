"""What every model store offers (`stores.open_store` opens one by URL).

A store lists models and their versions and makes one version's files
available as a local folder. The manager compares listings from one scan to
the next by their signatures, so a store says *that* something changed without
the manager knowing how (file times for a folder, ETags for a bucket).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from batchserve.errors import ModelLoadError


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
