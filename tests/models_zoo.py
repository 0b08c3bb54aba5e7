"""Tiny torch models the tests save and load: each one stands for a kind of real model.

They live in an importable module (`tests.models_zoo:Class`) because a safetensors
artifact is rebuilt from a class path, and a pickled module needs its class importable.
"""

from __future__ import annotations

import time

import torch
from torch import nn


class TinyMLP(nn.Module):
    """A clean two-layer model: no state, no randomness."""

    def __init__(self, in_features: int = 4, hidden: int = 8, out_features: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class CleanConvNet(nn.Module):
    """A clean small image model: conv, pool, linear. Input (N, 3, 8, 8)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class CustomLayer(nn.Module):
    """The seed's bug: forward counts its calls and adds the count to the output."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.counter += 1
        return x + self.counter


class CustomLayerModel(nn.Module):
    """A Linear followed by the seed's CustomLayer: outputs depend on call history."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.layer = CustomLayer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.linear(x))


class DropoutModel(nn.Module):
    """Dropout between two Linears: random in training mode, deterministic in eval."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 16)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.fc1(x)))


class CallCounterModel(nn.Module):
    """Counts its calls for statistics; the count never reaches the output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(x)


class ScratchModel(nn.Module):
    """Keeps an intermediate on `self` between two steps: concurrent calls overwrite it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.scratch: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.scratch = self.fc(x)
        time.sleep(0.002)  # another thread's call lands here
        return self.scratch * 2


class NoisyModel(nn.Module):
    """Adds noise from torch's RNG even in eval mode: random, but holds no state."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y + torch.rand_like(y)


class TwoHeads(nn.Module):
    """Returns a dict of two outputs, as detection or multi-task models do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.fc(x)
        return {"logits": h, "probs": torch.softmax(h, dim=-1)}


class LazyScale(nn.Module):
    """Computes a constant on its first call and keeps it: a write on the first call only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.scale: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is None:
            self.scale = 2.0
        return self.fc(x) * self.scale
