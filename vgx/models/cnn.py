"""Convolutional network: the CIFAR ResNet of He et al. 2016 (CVPR, §4.2), any image shape.

stem (k×k conv from the image's channels to `width`) → `stages` stages of `depth` blocks each, the
channels doubling and the map halving (stride 2) where a stage starts → global average pooling →
linear head. Every block holds two convolutions (vgx.models.blocks), so with 3 stages the net has
6·depth + 2 weight layers: depth=3 is ResNet-20, depth=9 ResNet-56; skip=none is the plain net of
the same layers.
"""

from __future__ import annotations

import math
from functools import partial

from torch import Tensor, nn

from vgx.errors import ConfigError
from vgx.models.blocks import SKIPS, Parts
from vgx.models.layers import CNN
from vgx.models.spec import NetSpec


def conv(fan_in: int, fan_out: int, stride: int, kernel: int) -> nn.Conv2d:
    """k×k, padding k // 2: the map keeps its size, or halves (rounding up) at stride 2."""
    return nn.Conv2d(fan_in, fan_out, kernel, stride=stride, padding=kernel // 2)


def square_image(n_features: int) -> tuple[int, int, int]:
    """A flat input without a recorded image shape, viewed as one square channel."""
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ConfigError(
            f"model=cnn needs images; data has {n_features} features and no image shape "
            "(valid: data=digits, mnist, fashion_mnist, cifar10, or data=synthetic with a "
            "square data.n_features)"
        )
    return 1, side, side


class CNNNet(nn.Module):
    """Inputs arrive flat (B, C·H·W) and are viewed as (B, C, H, W)."""

    def __init__(
        self,
        spec: NetSpec,
        kernel_size: int = 3,
        stages: int = 3,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size={kernel_size} must be an odd number ≥ 1")
        self.image_shape = tuple(image_shape or square_image(spec.n_features))
        kind, width = SKIPS[spec.skip], spec.width
        parts = Parts(partial(conv, kernel=kernel_size), "conv", CNN, spec.act, spec.norm)
        self.stem = kind.stem(parts, self.image_shape[0], width)
        blocks, channels = [], width
        for stage in range(stages):
            for index in range(spec.depth):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(kind.block(parts, channels, width * 2**stage, stride))
                channels = width * 2**stage
        self.blocks = nn.Sequential(*blocks)
        self.final = kind.final(parts, channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, spec.n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        x = x.view(x.shape[0], *self.image_shape)  # (B, C, H, W)
        x = self.final(self.blocks(self.stem(x)))  # (B, width·2^(stages−1), H', W')
        return self.head(self.pool(x).flatten(1))
