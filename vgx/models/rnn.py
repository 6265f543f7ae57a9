"""Recurrent networks: `depth` stacked single-layer RNN/LSTM/GRU modules over `seq_len` steps.

Each layer is its own module so the probe sees every layer (and its hidden states) separately.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import Tensor, nn

from vgx.errors import ConfigError
from vgx.models.blocks import Residual
from vgx.models.layers import NORMS, RNN, RNN_ACTIVATIONS
from vgx.models.spec import NetSpec

# Constructors, not type[nn.RNNBase]: RNNBase's own __init__ takes the mode first, and only RNN
# takes `nonlinearity`.
CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# skip -> how it wraps a constant-width layer: residual is x + layer(x), the residual stacked
# LSTM of Wu et al. 2016 (GNMT); the published two-layer blocks are for MLPs and CNNs.
RECURRENT_SKIPS: dict[str, type[nn.Module] | None] = {"none": None, "residual": Residual}


class RecurrentBlock(nn.Module):
    """One recurrent layer then a norm, returning only the output sequence (B, T, H)."""

    def __init__(self, cell: str, fan_in: int, width: int, act: str, norm: str) -> None:
        super().__init__()
        kwargs = {"nonlinearity": act} if cell == "rnn" else {}
        self.recurrent = CELLS[cell](fan_in, width, batch_first=True, **kwargs)
        self.norm = NORMS[norm](RNN, width)

    def forward(self, x: Tensor) -> Tensor:
        output, _ = self.recurrent(x)  # (B, T, H)
        return self.norm(output)


class RecurrentNet(nn.Module):
    """A head reads every time step; the dataset decides which steps the loss uses."""

    def __init__(self, cell: str, spec: NetSpec) -> None:
        super().__init__()
        act, skip, width = spec.act, spec.skip, spec.width
        if cell == "rnn" and act not in RNN_ACTIVATIONS:
            raise ConfigError(f"act={act} does not apply to model=rnn; valid: tanh, relu")
        if cell != "rnn" and act != "tanh":
            raise ConfigError(
                f"act={act} does not apply to model={cell}: its gates are fixed "
                "(sigmoid gates, tanh cell); valid: tanh, or model=rnn for act=relu"
            )
        if skip not in RECURRENT_SKIPS:
            raise ConfigError(
                f"skip={skip} does not apply to model={cell}; valid: {', '.join(RECURRENT_SKIPS)}"
            )
        block, wrap = (
            partial(RecurrentBlock, cell, width=width, act=act, norm=spec.norm),
            RECURRENT_SKIPS[skip],
        )
        rest = (block(width) for _ in range(spec.depth - 1))
        self.blocks = nn.Sequential(block(spec.n_features), *(wrap(b) if wrap else b for b in rest))
        self.head = nn.Linear(width, spec.n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(x))  # (B, T, F) -> (B, T, n_outputs)
