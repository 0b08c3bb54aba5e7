"""Build the penguins example's weights: a softmax regression fitted on generated penguins.

The data are drawn, never downloaded: each species' four measurements from a normal
distribution with roughly the means and spreads of the Palmer Archipelago penguins
(bill length and depth in mm, flipper length in mm, body mass in g). `sample` is also
what the tests draw fresh penguins from.

    .venv/bin/python examples/penguins/train.py      # writes examples/penguins/1/weights.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FEATURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
SPECIES = ("Adelie", "Chinstrap", "Gentoo")
#: Per species: the mean and standard deviation of each feature, in FEATURES order.
MEANS = np.array(
    [[38.8, 18.3, 190.0, 3700.0], [48.8, 18.4, 195.8, 3733.0], [47.5, 15.0, 217.2, 5076.0]]
)
SPREADS = np.array([[2.7, 1.2, 6.5, 458.0], [3.3, 1.1, 7.1, 384.0], [3.1, 1.0, 6.5, 504.0]])


def sample(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` penguins: features float32 [count, 4] and species indices [count]."""
    species = rng.integers(len(SPECIES), size=count)
    features = rng.normal(MEANS[species], SPREADS[species]).astype(np.float32)
    return features, species


def fit(features: np.ndarray, species: np.ndarray, steps: int = 3000, rate: float = 0.5) -> dict:
    """Multinomial logistic regression on standardised features, by gradient descent."""
    features = features.astype(np.float64)
    mean, std = features.mean(axis=0), features.std(axis=0)
    x = (features - mean) / std
    onehot = np.eye(len(SPECIES))[species]
    weights = np.zeros((x.shape[1], len(SPECIES)))
    bias = np.zeros(len(SPECIES))
    for _ in range(steps):
        logits = x @ weights + bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        weights -= rate * x.T @ (p - onehot) / len(x)
        bias -= rate * (p - onehot).mean(axis=0)
    return {"mean": mean, "std": std, "weights": weights, "bias": bias}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "1" / "weights.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train_x, train_y = sample(rng, 3000)
    test_x, test_y = sample(rng, 1000)
    model = fit(train_x, train_y)
    logits = (test_x - model["mean"]) / model["std"] @ model["weights"] + model["bias"]
    accuracy = float((logits.argmax(axis=1) == test_y).mean())
    document = {
        "features": list(FEATURES),
        "species": list(SPECIES),
        **{k: np.round(v, 6).tolist() for k, v in model.items()},
        "training": {"samples": len(train_x), "held_out": len(test_x), "accuracy": accuracy},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out}: held-out accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
