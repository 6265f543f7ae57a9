"""Recurrent networks: `depth` stacked single-layer RNN/LSTM/GRU modules over `seq_len` steps.

Each layer is its own module so the probe sees every layer (and its hidden states) separately.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from vgx.errors import ConfigError
from vgx.models.layers import NORMS, RNN, RNN_ACTIVATIONS, stack

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


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

    def __init__(
        self,
        cell: str,
        n_features: int,
        n_outputs: int,
        depth: int,
        width: int,
        act: str,
        norm: str,
        skip: str,
    ) -> None:
        super().__init__()
        if cell == "rnn" and act not in RNN_ACTIVATIONS:
            raise ConfigError(f"act={act} does not apply to model=rnn; valid: tanh, relu")
        if cell != "rnn" and act != "tanh":
            raise ConfigError(
                f"act={act} does not apply to model={cell}: its gates are fixed "
                "(sigmoid gates, tanh cell); valid: tanh, or model=rnn for act=relu"
            )
        block = partial(RecurrentBlock, cell, width=width, act=act, norm=norm)
        self.blocks = stack(block, n_features, width, depth, skip)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(x))  # (B, T, F) -> (B, T, n_outputs)
