"""Labels: top-k, softmax, label files."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from batchserve.codecs.labels import load_labels, softmax, top_k


def test_top_k_matches_a_full_stable_sort_even_with_ties() -> None:
    scores = np.random.default_rng(0).integers(0, 5, size=(50, 40)).astype(np.float32)
    indices, values = top_k(scores, 7)

    reference = np.argsort(-scores, axis=-1, kind="stable")[:, :7]
    np.testing.assert_array_equal(indices, reference)
    np.testing.assert_array_equal(values, np.take_along_axis(scores, reference, -1))


def test_top_k_edge_cases() -> None:
    # Boundary ties go to the lowest index; k beyond n is clamped.
    assert top_k(np.array([1, 5, 5, 5], dtype=np.uint8), 2)[0].tolist() == [1, 2]
    assert top_k(np.array([2.0, 1.0]), 10)[0].tolist() == [0, 1]
    # NaN ranks below every number.
    indices, values = top_k(np.array([np.nan, -1.0, 0.5]), 3)
    assert indices.tolist() == [2, 1, 0] and np.isnan(values[2])
    with pytest.raises(ValueError):
        top_k(np.array([1.0]), 0)


def test_softmax_is_stable_and_keeps_float32() -> None:
    probs = softmax(np.array([[1000.0, 1000.0], [0.0, -np.inf]], dtype=np.float32))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, [[0.5, 0.5], [1.0, 0.0]])


def test_load_labels_keeps_line_indices(tmp_path: Any) -> None:
    path = tmp_path / "labels.txt"
    path.write_bytes("\ufeffcat\r\n\ndog \n".encode())
    assert load_labels(path) == ["cat", "", "dog"]
