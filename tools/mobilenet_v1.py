"""MobileNet v1 in PyTorch (Howard et al., 2017), for the demo model that the repo ships.

Depthwise-separable convolutions with BatchNorm and ReLU, a width multiplier
``alpha`` that thins every layer, and global average pooling before the
classifier, so any input size that survives the 32x downsampling works.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mobilenet_blocks import BLOCKS, STEM_CHANNELS


def scaled(channels: int, alpha: float) -> int:
    """Channels after the width multiplier; at least 8 so a thin model keeps some capacity."""
    return max(8, round(channels * alpha))


class ConvBNReLU(nn.Sequential):
    """Conv (no bias: BatchNorm supplies it) + BatchNorm + ReLU."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv then 1x1 pointwise conv: MobileNet's cheap replacement for a 3x3 conv."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__(
            ConvBNReLU(in_ch, in_ch, 3, stride, groups=in_ch),
            ConvBNReLU(in_ch, out_ch, 1),
        )


class MobileNetV1(nn.Module):
    """MobileNet v1 classifier; ``forward`` maps NCHW float images to unnormalised logits."""

    def __init__(self, num_classes: int = 1000, alpha: float = 1.0, dropout: float = 0.0) -> None:
        super().__init__()
        channels = scaled(STEM_CHANNELS, alpha)
        layers: list[nn.Module] = [ConvBNReLU(3, channels, 3, stride=2)]
        for out, stride in BLOCKS:
            out_ch = scaled(out, alpha)
            layers.append(DepthwiseSeparable(channels, out_ch, stride))
            channels = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He init keeps activation scale steady through the ReLU stack.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(self.pool(x), 1)
        return self.classifier(self.dropout(x))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
