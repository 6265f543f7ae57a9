"""Weight initialisations: each one really sets the distribution it names."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from vgx.registry import Registry

InitFn = Callable[[Tensor, float], None]  # (weight, init_std) -> fills weight in place


def _lecun_normal(weight: Tensor, std: float) -> None:
    # LeCun et al. 1998: Var = 1/fan_in, the fixed point SELU needs (Klambauer et al. 2017).
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(fan_in))


INITS: Registry[InitFn | None] = Registry("init", "weight initialisation")
INITS.add("default", None)  # PyTorch's own: Linear/Conv get U(±1/sqrt(fan_in)), Glorot's "standard"
INITS.add("xavier_uniform", lambda w, std: nn.init.xavier_uniform_(w))  # Glorot & Bengio 2010
INITS.add("xavier_normal", lambda w, std: nn.init.xavier_normal_(w))
# He et al. 2015: Var = 2/fan_in keeps ReLU activations' second moment constant with depth.
INITS.add("he_uniform", lambda w, std: nn.init.kaiming_uniform_(w, nonlinearity="relu"))
INITS.add("he_normal", lambda w, std: nn.init.kaiming_normal_(w, nonlinearity="relu"))
INITS.add("orthogonal", lambda w, std: nn.init.orthogonal_(w))  # Saxe et al. 2014
INITS.add("lecun_normal", _lecun_normal)
INITS.add("normal", lambda w, std: nn.init.normal_(w, 0.0, std))  # N(0, init_std^2)

RECURRENT_INITS: Registry[InitFn | None] = Registry("recurrent_init", "init of hidden-to-hidden")
RECURRENT_INITS.add("default", None)  # follow `init`
RECURRENT_INITS.add("orthogonal", lambda w, std: nn.init.orthogonal_(w))  # norm-preserving


def _gate_chunks(module: nn.RNNBase, weight: Tensor) -> tuple[Tensor, ...]:
    """Each gate's block of a stacked LSTM/GRU matrix, so fans are those of one gate."""
    return weight.chunk(weight.shape[0] // module.hidden_size)


@torch.no_grad()
def initialise(
    model: nn.Module,
    init: str,
    init_std: float,
    recurrent_init: str = "default",
    forget_bias: float | None = None,
) -> None:
    """Apply `init` to every Linear, Conv and recurrent weight (biases to zero) of `model`."""
    fill, fill_recurrent = INITS[init], RECURRENT_INITS[recurrent_init]
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d) and fill:
            fill(module.weight, init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.RNNBase):
            _initialise_recurrent(module, fill, fill_recurrent or fill, init_std, forget_bias)


def _initialise_recurrent(
    module: nn.RNNBase,
    fill: InitFn | None,
    fill_recurrent: InitFn | None,
    init_std: float,
    forget_bias: float | None,
) -> None:
    for name, param in module.named_parameters():
        chosen = fill_recurrent if name.startswith("weight_hh") else fill
        if name.startswith("weight") and chosen:
            for gate in _gate_chunks(module, param):
                chosen(gate, init_std)
        elif name.startswith("bias") and fill:
            nn.init.zeros_(param)
    if forget_bias is not None and isinstance(module, nn.LSTM):
        # Gers et al. 2000: a positive forget-gate bias keeps the cell open at init.
        # PyTorch orders LSTM gates (input, forget, cell, output); both biases add, so set one.
        hidden = module.hidden_size
        for name, param in module.named_parameters():
            if name.startswith("bias_ih"):
                param[hidden : 2 * hidden].fill_(forget_bias)
            elif name.startswith("bias_hh"):
                param[hidden : 2 * hidden].zero_()
