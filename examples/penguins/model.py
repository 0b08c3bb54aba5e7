"""Penguin species from four measurements, as a batchserve Python model: a tabular model
whose request is CSV or JSON rows, one prediction per row.

The weights are a softmax regression that `train.py` fits on generated penguins
(`1/weights.json`, under 1 kB). Served on /v1/models/penguins/predict (CSV with a
header row, or JSON `{"rows": [...]}`; the README's "Writing a Python model" has the
curl commands) and on v2 infer (`features` FP32 [N, 4] in; `species` BYTES [N] and
`probabilities` FP32 [N, 3] out). Every request's rows, from all the requests of a
batch, go through one matrix product.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


class PenguinClassifier:
    """Adelie, Chinstrap or Gentoo, with the probability of each."""

    inputs = ({"name": "features", "datatype": "FP32", "shape": [-1, 4]},)
    outputs = (
        {"name": "species", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    )
    concurrency_safe = True  # predict only reads the weights

    def load(self, version_dir: Path, options: dict[str, Any]) -> None:
        weights = json.loads((version_dir / "weights.json").read_text())
        self.features: list[str] = weights["features"]
        self.species: list[str] = weights["species"]
        self.mean = np.array(weights["mean"], np.float32)
        self.std = np.array(weights["std"], np.float32)
        self.weights = np.array(weights["weights"], np.float32)
        self.bias = np.array(weights["bias"], np.float32)
        self.max_rows = int(options.get("max_rows", 10_000))

    # -- /v1 -----------------------------------------------------------------------------

    def decode(self, body: bytes, content_type: str) -> dict[str, np.ndarray]:
        """CSV with a header row (text/csv), or JSON {"rows": [...]} whose rows are objects
        keyed by feature or lists in feature order -> {"features": float32 [N, 4]}."""
        text = body.decode("utf-8")
        if content_type.split(";")[0].strip().lower() == "text/csv":
            rows = list(csv.DictReader(io.StringIO(text)))
        else:
            document = json.loads(text)
            if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
                raise ValueError('send text/csv with a header row, or JSON {"rows": [...]}')
            rows = document["rows"]
        if not rows:
            raise ValueError("no rows")
        if len(rows) > self.max_rows:
            raise ValueError(f"{len(rows)} rows; at most {self.max_rows} in one request")
        return {"features": np.array([self._row(i, r) for i, r in enumerate(rows)], np.float32)}

    def _row(self, index: int, row: Any) -> list[float]:
        if isinstance(row, dict):
            missing = [f for f in self.features if row.get(f) in (None, "")]
            if missing:
                raise ValueError(f"row {index + 1}: missing {', '.join(missing)}")
            values = [row[f] for f in self.features]
        elif isinstance(row, list) and len(row) == len(self.features):
            values = row
        else:
            raise ValueError(f"row {index + 1}: expected {len(self.features)} values")
        try:
            return [float(v) for v in values]
        except (TypeError, ValueError):
            raise ValueError(f"row {index + 1}: {values} are not all numbers") from None

    def encode(self, output: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        return [
            {
                "species": str(name),
                "probability": round(float(p.max()), 4),
                "probabilities": {
                    s: round(float(v), 4) for s, v in zip(self.species, p, strict=True)
                },
            }
            for name, p in zip(output["species"], output["probabilities"], strict=True)
        ]

    def example(self, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {"features": (self.mean + self.std * rng.standard_normal((3, 4))).astype(np.float32)}

    # -- the model ------------------------------------------------------------------------

    def predict(self, inputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        for request in inputs:
            self._check(request["features"])
        rows = np.concatenate([request["features"] for request in inputs])
        logits = (rows - self.mean) / self.std @ self.weights + self.bias
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        names = np.array(self.species, dtype=object)[probabilities.argmax(axis=1)]
        results, start = [], 0
        for request in inputs:
            end = start + len(request["features"])
            results.append({"species": names[start:end], "probabilities": probabilities[start:end]})
            start = end
        return results

    def _check(self, features: np.ndarray) -> None:
        """A measurement no penguin has fails its own request (v2 requests skip decode)."""
        for index, row in enumerate(features):
            for name, value in zip(self.features, row.tolist(), strict=True):
                if not math.isfinite(value) or value <= 0:
                    raise ValueError(
                        f"row {index + 1}: {name} must be a positive number, not {value}"
                    )
