"""Weight initialisations: each really sets the distribution it names, and says what variance
that is, so the mean-field theory (vgx.theory) reads the same entry the model was built with."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vgx.registry import Registry

# (weight, init_std): fills weight in place; what it returns (nn.init's return the weight) is unused
InitFn = Callable[[Tensor, float], object]
# (fan_in, fan_out, init_std) -> (σ_w², σ_b²): weight variance × fan_in, and the bias variance.
VarianceFn = Callable[[int, int, float], tuple[float, float]]


@dataclass(frozen=True)
class Init:
    """One weight initialisation: how it fills a weight and the variances it gives.

    `fill` None keeps PyTorch's own init (weights and biases); any other fill zeroes the biases.
    An entry with `auto` set stands for the init the activation was designed with: resolve it
    with vgx.models.resolve_init.
    """

    fill: InitFn | None
    variance: VarianceFn
    auto: bool = False


def _fans(weight: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) as nn.init counts them: a conv's receptive field included."""
    return nn.init._calculate_fan_in_and_fan_out(weight)


def kaiming(gain2: float) -> Init:
    """He et al. 2015, eq. 10 generalised: N(0, gain²/fan_in), gain² = 2/(1 + a²) for a rectifier
    whose negative slope is a (2 for ReLU). χ₁ = 1: the gradient keeps its norm through depth."""

    def fill(weight: Tensor, std: float) -> None:
        nn.init.normal_(weight, 0.0, math.sqrt(gain2 / _fans(weight)[0]))

    return Init(fill, lambda fi, fo, std: (gain2, 0.0))


def rectifier_gain2(negative_slope: float) -> float:
    """He et al. 2015, §2.2: Var·fan_in = 2/(1 + a²) for a rectifier with negative slope a."""
    return 2.0 / (1.0 + negative_slope**2)


def _glorot_variance(fan_in: int, fan_out: int, std: float) -> tuple[float, float]:
    # Glorot & Bengio 2010, eq. 16: Var = 2/(fan_in + fan_out); σ_w² = 1 for equal widths.
    return 2 * fan_in / (fan_in + fan_out), 0.0


def _lecun_normal(weight: Tensor, std: float) -> None:
    # LeCun et al. 1998: Var = 1/fan_in, the fixed point SELU needs (Klambauer et al. 2017).
    nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(_fans(weight)[0]))


def _orthogonal_variance(fan_in: int, fan_out: int, std: float) -> tuple[float, float]:
    # An orthogonal matrix has entries of second moment 1/max(fan_in, fan_out), the same as
    # Var = 1/fan_in when square; the Gaussian length map ignores its exact spectrum (Saxe et al.
    # 2014; Pennington et al. 2017 show the spectrum matters beyond the mean).
    return fan_in / max(fan_in, fan_out), 0.0


# PyTorch's Linear and Conv: weight and bias U(±1/√fan_in), Var = bound²/3 — Glorot's "standard"
# init, σ_w² = 1/3: the classic cause of vanishing gradients (χ₁ = 1/6 for ReLU).
PYTORCH_DEFAULT = Init(None, lambda fi, fo, std: (1 / 3, 1 / (3 * fi)))
GLOROT_UNIFORM = Init(lambda w, std: nn.init.xavier_uniform_(w), _glorot_variance)
LECUN_NORMAL = Init(_lecun_normal, lambda fi, fo, std: (1.0, 0.0))

INITS: Registry[Init] = Registry("init", "weight initialisation")
# The init each activation was designed with (the activation registry names it): He with the
# rectifier's own gain for the ReLU family, LeCun for SELU, Glorot for saturating units.
INITS.add("auto", Init(None, lambda fi, fo, std: (math.nan, math.nan), auto=True))
INITS.add("default", PYTORCH_DEFAULT)
INITS.add("xavier_uniform", GLOROT_UNIFORM)  # Glorot & Bengio 2010
INITS.add("xavier_normal", Init(lambda w, std: nn.init.xavier_normal_(w), _glorot_variance))
# He et al. 2015: Var = 2/fan_in keeps ReLU activations' second moment constant with depth.
INITS.add(
    "he_uniform",
    Init(lambda w, std: nn.init.kaiming_uniform_(w, nonlinearity="relu"), kaiming(2.0).variance),
)
INITS.add("he_normal", kaiming(2.0))
INITS.add("orthogonal", Init(lambda w, std: nn.init.orthogonal_(w), _orthogonal_variance))
INITS.add("lecun_normal", LECUN_NORMAL)
INITS.add(  # N(0, init_std²)
    "normal",
    Init(lambda w, std: nn.init.normal_(w, 0.0, std), lambda fi, fo, std: (std * std * fi, 0.0)),
)

RECURRENT_INITS: Registry[InitFn | None] = Registry("recurrent_init", "init of hidden-to-hidden")
RECURRENT_INITS.add("default", None)  # follow `init`
RECURRENT_INITS.add("orthogonal", lambda w, std: nn.init.orthogonal_(w))  # norm-preserving


def _gate_chunks(module: nn.RNNBase, weight: Tensor) -> tuple[Tensor, ...]:
    """Each gate's block of a stacked LSTM/GRU matrix, so fans are those of one gate."""
    return weight.chunk(weight.shape[0] // module.hidden_size)


@torch.no_grad()
def initialise(
    model: nn.Module,
    init: Init,
    init_std: float,
    recurrent_init: str = "default",
    forget_bias: float | None = None,
) -> None:
    """Apply `init` (resolved: not `auto`) to every Linear, Conv and recurrent weight of `model`
    (biases to zero unless the init is PyTorch's own)."""
    if any(p.is_meta for p in model.parameters()):
        # `vgx sweep`'s check builds every model on the meta device: there are no values to fill,
        # and the first random fill of a meta tensor costs the front end 0.8 s of torch set-up.
        return
    fill, fill_recurrent = init.fill, RECURRENT_INITS[recurrent_init]
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
