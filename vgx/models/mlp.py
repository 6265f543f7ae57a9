"""Fully connected network: `depth` hidden blocks of Linear -> norm -> activation, then a head."""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

from torch import Tensor, nn

from vgx.models.layers import ACTIVATIONS, MLP, NORMS, stack


def mlp_block(fan_in: int, width: int, act: str, norm: str) -> nn.Sequential:
    """Linear -> norm -> activation, the order of Ioffe & Szegedy 2015."""
    return nn.Sequential(
        OrderedDict(
            linear=nn.Linear(fan_in, width),
            norm=NORMS[norm](MLP, width),
            act=ACTIVATIONS[act](),
        )
    )


class MLPNet(nn.Module):
    """The first block maps the input to `width`; the others keep the width, so skips fit."""

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        depth: int,
        width: int,
        act: str,
        norm: str,
        skip: str,
    ) -> None:
        super().__init__()
        self.blocks = stack(
            partial(mlp_block, width=width, act=act, norm=norm), n_features, width, depth, skip
        )
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(x.flatten(1)))  # (B, F) -> (B, n_outputs)
