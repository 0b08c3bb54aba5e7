"""Where the bundled demo models live when batchserve runs from a checkout."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: The shipped demo models, then the models that `make` builds at set-up.
BUNDLED = (PROJECT_ROOT / "models", PROJECT_ROOT / "models-bench", PROJECT_ROOT / "models-text")
SAMPLES = PROJECT_ROOT / "samples"


def bundled_repositories() -> list[Path]:
    return [p for p in BUNDLED if p.is_dir()]
