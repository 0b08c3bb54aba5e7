"""A model repository in a local folder: one folder per model, one numbered folder per version."""

from __future__ import annotations

from pathlib import Path

from batchserve.errors import ModelNotFound


class LocalStore:
    """Lists models and versions under `root`; a version's files are used in place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

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
