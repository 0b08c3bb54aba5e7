"""Class labels and top-k: the pieces shared by v2 classification and /predict.

Both the v2 classification extension ("score:index:label" strings) and the
/predict route (``[{label, score}]``) rank a model's scores the same way, so the
ranking lives here once: `top_k` over the last axis, `softmax` for logits, and
`load_labels` for the one-label-per-line file next to the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_labels(path: str | Path) -> list[str]:
    """The labels of a labels file: line i (from 0) names class i.

    Blank lines are kept as "" so that the lines after them keep their index;
    a UTF-8 byte-order mark (some editors write one) is dropped.
    """
    text = Path(path).read_text(encoding="utf-8-sig")
    return [line.strip() for line in text.splitlines()]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits along `axis`, computed without overflow.

    Float inputs keep their precision (float16 is computed in float32 and cast
    back, since its exp overflows early); anything else is computed in float64.
    """
    x = np.asarray(logits)
    out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    work = x.astype(np.promote_types(out_dtype, np.float32), copy=False)
    # Shifting by the max makes exp's largest argument 0, so it cannot overflow.
    shifted = work - np.max(work, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return (exp / np.sum(exp, axis=axis, keepdims=True)).astype(out_dtype, copy=False)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` highest scores along the last axis and their indices, highest first.

    Returns ``(indices, values)``, each of shape ``scores.shape[:-1] + (min(k, n),)``.
    Ties go to the lower index, both in which elements make the cut and in
    their order, so the same scores always give the same answer. NaN ranks
    below every number (a NaN score is no evidence for a class). The cost is
    one O(n) partition plus a sort of only the k winners, not of all n.
    """
    a = np.asarray(scores)
    if a.ndim == 0:
        raise ValueError("top_k needs at least one axis of scores")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = a.shape[-1]
    k = min(k, n)
    key = a
    if np.issubdtype(a.dtype, np.floating) and np.isnan(a).any():
        key = np.where(np.isnan(a), -np.inf, a)
    if k == n:
        indices = _argsort_descending(key)
    else:
        indices = _select_top(key, k)
        indices = np.take_along_axis(
            indices, _argsort_descending(np.take_along_axis(key, indices, axis=-1)), axis=-1
        )
    return indices, np.take_along_axis(a, indices, axis=-1)


def _select_top(key: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest per row, in ascending index order; ties at the cut go low."""
    n = key.shape[-1]
    # The k-th largest value of each row: everything above it is in, and of the
    # values equal to it only as many as are still needed, lowest index first.
    # (argpartition alone would pick among boundary ties arbitrarily.)
    threshold = np.partition(key, n - k, axis=-1)[..., n - k : n - k + 1]
    above = key > threshold
    equal = key == threshold
    needed = k - above.sum(axis=-1, keepdims=True)
    chosen = above | (equal & (np.cumsum(equal, axis=-1) <= needed))
    # Exactly k per row, and nonzero walks rows in order, so this reshapes cleanly.
    return np.nonzero(chosen)[-1].reshape(*key.shape[:-1], k)


def _argsort_descending(key: np.ndarray) -> np.ndarray:
    """A stable descending argsort over the last axis (ties keep index order).

    Negating the key would break on unsigned and bool scores, so sort the
    reversed rows ascending (stable) and map the positions back instead.
    """
    n = key.shape[-1]
    ascending_of_reversed = np.argsort(key[..., ::-1], axis=-1, kind="stable")
    return (n - 1) - ascending_of_reversed[..., ::-1]
