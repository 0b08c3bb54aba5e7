"""A classifier's output row -> `[{label, score}]`, highest first."""

from __future__ import annotations

import numpy as np

from batchserve.codecs.labels import softmax, top_k
from batchserve.config import ClassificationConfig


def scores_from_output(output: np.ndarray, config: ClassificationConfig) -> np.ndarray:
    """Apply the configured activation over the last axis."""
    values = np.asarray(output, dtype=np.float32)
    if config.activation == "softmax":
        return softmax(values)
    if config.activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-values))
    return values


def top_k_labels(scores: np.ndarray, k: int, labels: list[str] | None) -> list[dict[str, object]]:
    """The k best classes of one row of scores; the index stands in for a missing label."""
    row = np.asarray(scores).reshape(-1)
    indices, values = top_k(row, k)
    return [
        {
            "label": labels[i] if labels and i < len(labels) else str(int(i)),
            "index": int(i),
            "score": float(v),
        }
        for i, v in zip(indices.tolist(), values.tolist(), strict=True)
    ]
