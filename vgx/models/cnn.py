"""Convolutional network on square single-channel images: conv blocks, global pooling, a head."""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

from torch import Tensor, nn

from vgx.errors import ConfigError
from vgx.models.layers import ACTIVATIONS, CNN, NORMS, stack


def conv_block(channels_in: int, width: int, kernel: int, act: str, norm: str) -> nn.Sequential:
    """Conv (same padding, so every block keeps the spatial size) -> norm -> activation."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(channels_in, width, kernel, padding=kernel // 2),
            norm=NORMS[norm](CNN, width),
            act=ACTIVATIONS[act](),
        )
    )


class CNNNet(nn.Module):
    """Vector inputs of a square size (64 for digits) are viewed as one-channel images."""

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        depth: int,
        width: int,
        act: str,
        norm: str,
        skip: str,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.side = math.isqrt(n_features)
        if self.side * self.side != n_features:
            raise ConfigError(
                f"model=cnn needs square images; data has {n_features} features "
                "(valid: data=digits, or data=synthetic with a square data.n_features)"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size={kernel_size} must be an odd number ≥ 1")
        block = partial(conv_block, width=width, kernel=kernel_size, act=act, norm=norm)
        self.blocks = stack(block, 1, width, depth, skip)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        x = x.view(x.shape[0], 1, self.side, self.side)  # (B, 1, S, S)
        x = self.pool(self.blocks(x)).flatten(1)  # (B, width)
        return self.head(x)
