"""A repository of the text models for the server tests: the shipped docgen model, a
one-slot variant of it, and the MiniLM embedding model built at set-up."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.live_server import PROJECT_ROOT

DOCGEN = PROJECT_ROOT / "models" / "docgen"
MINILM = PROJECT_ROOT / "models-text" / "minilm"


def text_repository(root: Path) -> Path:
    """`root` with docgen, docgen_one (one slot, no practical token limit) and minilm,
    linked to the real files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "docgen").symlink_to(DOCGEN, target_is_directory=True)
    (root / "minilm").symlink_to(MINILM, target_is_directory=True)
    one = root / "docgen_one"
    one.mkdir()
    (one / "1").symlink_to(DOCGEN / "1", target_is_directory=True)
    config = yaml.safe_load((DOCGEN / "model.yaml").read_text())
    config["name"] = "docgen_one"
    config["generate"]["max_tokens_limit"] = 1_000_000
    config["scheduler"]["max_batch_size"] = 1
    (one / "model.yaml").write_text(yaml.safe_dump(config))
    return root
