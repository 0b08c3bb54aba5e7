"""A model repository in a local folder: one folder per model, one numbered folder per version."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from batchserve.errors import ModelNotFound
from batchserve.repository.store import ModelListing


class LocalStore:
    """Lists models and versions under `root`; a version's files are used in place.

    Signatures come from file names, sizes and modification times: cheap enough
    to poll every half second, and they change while a copy is still being
    written, which is what lets the manager wait for a version to settle.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def snapshot(self) -> dict[str, ModelListing]:
        found = {}
        for name in self.list_models():
            try:
                found[name] = self._listing(name)
            except FileNotFoundError:  # removed while we listed: the next scan sees it gone
                continue
        return found

    def list_models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "model.yaml").is_file()
        )

    def model_dir(self, name: str) -> Path:
        path = self.root / name
        if not (path / "model.yaml").is_file():
            raise ModelNotFound(f"model {name!r} is not in {self.root}", self.list_models())
        return path

    def list_versions(self, name: str) -> list[int]:
        return sorted(
            int(p.name) for p in self.model_dir(name).iterdir() if p.is_dir() and p.name.isdigit()
        )

    def fetch(self, name: str, version: int) -> Path:
        """The folder holding this version's files."""
        path = self.model_dir(name) / str(version)
        if not path.is_dir():
            raise ModelNotFound(f"model {name!r} has no version {version}")
        return path

    def _listing(self, name: str) -> ModelListing:
        model_dir = self.root / name
        beside = [p for p in model_dir.iterdir() if p.is_file()]
        versions = {
            int(p.name): _signature(f for f in p.rglob("*") if f.is_file())
            for p in model_dir.iterdir()
            if p.is_dir() and p.name.isdigit()
        }
        return ModelListing(name, _signature(beside), versions)


def _signature(files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed while we listed: the next scan sees the change
            continue
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
