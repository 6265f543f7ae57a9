"""Registries of the layers a config can choose: activations and normalisations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from vgx.errors import ConfigError
from vgx.models.init import GLOROT_UNIFORM, INITS, LECUN_NORMAL, Init, kaiming, rectifier_gain2
from vgx.registry import Registry

LEAKY_SLOPE = 0.01  # leaky_relu's negative slope (PyTorch's default; Maas et al. 2013)
PRELU_SLOPE = 0.25  # prelu's learned negative slope at init (He et al. 2015, §2.1)


@dataclass(frozen=True)
class Activation:
    """A nonlinearity: how to build it and the init it was designed with (what `init=auto` uses)."""

    factory: Callable[[], nn.Module]
    auto_init: Init
    why: str  # the reason for auto_init: `vgx list` and the docs show it

    def __call__(self) -> nn.Module:
        return self.factory()


HE_RELU = INITS["he_normal"]  # the registered entry itself: `init=auto` is named he_normal
# GELU, SiLU, ELU (no init of their own in their papers) get He's: they are the identity for
# large inputs like ReLU, and at depth 20, width 64 the mean-field prediction (vgx.theory) is
# closest to constant with it: GELU loses 1.2 decades (Glorot: 5.7), SiLU 2.4 (5.9), ELU gains
# 0.6 (Glorot: loses 0.9).
SMOOTH_RECTIFIER = "He normal as for ReLU (closest to critical by vgx.theory)"
GLOROT = "Glorot uniform, Var = 2/(fan_in + fan_out) (Glorot & Bengio 2010)"

# name -> module factory and designed init; adding an activation is one line (timm's create_act).
ACTIVATIONS: Registry[Activation] = Registry("act", "nonlinearity after each layer")
for _name, _activation in {
    # saturates; derivative at most 1/4 (Glorot & Bengio 2010)
    "sigmoid": Activation(nn.Sigmoid, GLOROT_UNIFORM, GLOROT),
    # saturates; derivative at most 1; Glorot's init puts it at the critical σ_w² = 1
    "tanh": Activation(nn.Tanh, GLOROT_UNIFORM, GLOROT),
    # no saturation for x > 0; units can die (Nair & Hinton 2010)
    "relu": Activation(nn.ReLU, HE_RELU, "He normal, Var = 2/fan_in (He et al. 2015)"),
    # slope 0.01 for x < 0 keeps dead units alive (Maas et al. 2013)
    "leaky_relu": Activation(
        partial(nn.LeakyReLU, LEAKY_SLOPE),
        kaiming(rectifier_gain2(LEAKY_SLOPE)),
        "He normal, Var = 2/((1 + a²) fan_in), a = 0.01 (He et al. 2015)",
    ),
    # learned negative slope (He et al. 2015)
    "prelu": Activation(
        partial(nn.PReLU, init=PRELU_SLOPE),
        kaiming(rectifier_gain2(PRELU_SLOPE)),
        "He normal, Var = 2/((1 + a²) fan_in), a = 0.25 (He et al. 2015)",
    ),
    # smooth, negative saturation pushes means to 0 (Clevert et al. 2016)
    "elu": Activation(nn.ELU, HE_RELU, SMOOTH_RECTIFIER),
    # self-normalising with lecun_normal init (Klambauer et al. 2017)
    "selu": Activation(
        nn.SELU, LECUN_NORMAL, "LeCun normal, Var = 1/fan_in (Klambauer et al. 2017)"
    ),
    "gelu": Activation(nn.GELU, HE_RELU, SMOOTH_RECTIFIER),  # Hendrycks & Gimpel 2016
    "silu": Activation(nn.SiLU, HE_RELU, SMOOTH_RECTIFIER),  # swish (Ramachandran et al. 2017)
    # polynomial saturation, studied by Glorot & Bengio 2010
    "softsign": Activation(nn.Softsign, GLOROT_UNIFORM, GLOROT),
}.items():
    ACTIVATIONS.add(_name, _activation)

# Activations a vanilla nn.RNN accepts (its `nonlinearity` argument).
RNN_ACTIVATIONS = ("tanh", "relu")

# The family a layer belongs to decides which normalisation module fits it.
MLP, CNN, RNN = "mlp", "cnn", "rnn"


def _batch_norm(family: str, width: int) -> nn.Module:
    if family == RNN:
        raise ConfigError("norm=batch does not apply to recurrent models; valid: none, layer")
    return nn.BatchNorm2d(width) if family == CNN else nn.BatchNorm1d(width)


def _layer_norm(family: str, width: int) -> nn.Module:
    # For conv maps, layer norm normalises over (C, H, W): GroupNorm with one group does that.
    return nn.GroupNorm(1, width) if family == CNN else nn.LayerNorm(width)


NORMS: Registry[Callable[[str, int], nn.Module]] = Registry(
    "norm", "normalisation after each layer"
)
NORMS.add("none", lambda family, width: nn.Identity())
NORMS.add("batch", _batch_norm)  # Ioffe & Szegedy 2015
NORMS.add("layer", _layer_norm)  # Ba et al. 2016
