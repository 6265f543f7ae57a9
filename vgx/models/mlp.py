"""Fully connected network: `depth` blocks (the first is the stem), then a linear head.

The stem maps the input to `width` (Linear → norm → act; a pre-activation net's stem is the Linear
alone). The other depth − 1 blocks keep the width: one Linear → norm → act each for skip=none, so a
plain net has `depth` hidden layers, the net of the mean-field theory; two weight layers each for
skip=residual and skip=preact (vgx.models.blocks), 2·depth − 1 hidden layers in all.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from vgx.models.blocks import SKIPS, Parts
from vgx.models.layers import MLP
from vgx.models.spec import NetSpec


def linear(fan_in: int, fan_out: int, stride: int) -> nn.Linear:
    return nn.Linear(fan_in, fan_out)


class MLPNet(nn.Module):
    """stem → blocks → final (norm → act for preact) → head; `blocks[0]` is the stem."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        kind, parts = SKIPS[spec.skip], Parts(linear, "linear", MLP, spec.act, spec.norm)
        block = partial(kind.mlp_block, parts, spec.width, spec.width)
        self.blocks = nn.Sequential(
            kind.stem(parts, spec.n_features, spec.width),
            *(block() for _ in range(spec.depth - 1)),
        )
        self.final = kind.final(parts, spec.width)
        self.head = nn.Linear(spec.width, spec.n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.final(self.blocks(x.flatten(1))))  # (B, F) -> (B, n_outputs)
