"""Choosing the next token from a step's logits: greedy, or sampled with a temperature,
top-k, top-p (nucleus) and a per-request seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batchserve.errors import InvalidParameter


@dataclass(frozen=True)
class SamplingParams:
    """How one request chooses its tokens and when it stops.

    `temperature` 0 is greedy (argmax), so the output depends on nothing but the
    model and the prompt. Above 0, tokens are drawn from softmax(logits / T),
    restricted to the `top_k` most likely when `top_k` > 0, then to the nucleus
    when `top_p` < 1 (the fewest most likely tokens whose probabilities add up to
    at least `top_p`; always at least one), from a generator seeded with `seed`
    (a fresh random seed when None): the same seed gives the same text whatever
    else runs in the batch. `ignore_eos` keeps generating to
    `max_tokens` (benchmarks need fixed output lengths).
    """

    max_tokens: int
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise InvalidParameter(
                "max_tokens", f"max_tokens must be at least 1, not {self.max_tokens}"
            )
        if not 0.0 <= self.temperature <= 100.0:
            raise InvalidParameter(
                "temperature", f"temperature must be between 0 and 100, not {self.temperature}"
            )
        if self.top_k < 0:
            raise InvalidParameter(
                "top_k", f"top_k must be 0 (all tokens) or more, not {self.top_k}"
            )
        if not 0.0 <= self.top_p <= 1.0:
            raise InvalidParameter("top_p", f"top_p must be between 0 and 1, not {self.top_p}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidParameter("seed", f"seed must be between 0 and 2**63 - 1, not {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Sampler:
    """One request's token chooser; holds its own random generator."""

    def __init__(self, params: SamplingParams, eos_token: int | None) -> None:
        self.params = params
        self._banned = eos_token if params.ignore_eos else None
        self._rng = np.random.default_rng(params.seed)

    def __call__(self, logits: np.ndarray, greedy_choice: int | None = None) -> int:
        """The next token. `greedy_choice` is the row's argmax when the caller computed
        it for the whole batch at once."""
        if self._banned is not None and (greedy_choice == self._banned or not self.params.greedy):
            logits = logits.copy()
            logits[self._banned] = -np.inf
            greedy_choice = None
        if self.params.greedy:
            return int(np.argmax(logits)) if greedy_choice is None else greedy_choice
        scaled = logits.astype(np.float64) / self.params.temperature
        k = self.params.top_k
        if 0 < k < scaled.shape[0]:
            keep = np.argpartition(scaled, -k)[-k:]
        else:
            keep = np.arange(scaled.shape[0])
        chosen = scaled[keep]
        weights = np.exp(chosen - chosen.max())
        if self.params.top_p < 1.0:
            keep, weights = _nucleus(keep, weights, self.params.top_p)
        cumulative = np.cumsum(weights)
        index = int(np.searchsorted(cumulative, self._rng.random() * cumulative[-1], "right"))
        return int(keep[min(index, len(keep) - 1)])


def _nucleus(keep: np.ndarray, weights: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The fewest most likely of `keep` whose share of `weights` reaches `top_p`."""
    order = np.argsort(-weights, kind="stable")
    cumulative = np.cumsum(weights[order])
    count = int(np.searchsorted(cumulative, top_p * cumulative[-1], "left")) + 1
    nucleus = order[: min(count, len(order))]
    return keep[nucleus], weights[nucleus]
