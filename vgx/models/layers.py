"""Registries of the layers a config can choose: activations and normalisations."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from vgx.errors import ConfigError
from vgx.registry import Registry

# name -> module factory; adding an activation is one line (timm's create_act pattern).
ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("act", "nonlinearity after each layer")
for _name, _factory in {
    "sigmoid": nn.Sigmoid,  # saturates; derivative at most 1/4 (Glorot & Bengio 2010)
    "tanh": nn.Tanh,  # saturates; derivative at most 1
    "relu": nn.ReLU,  # no saturation for x > 0; units can die (Nair & Hinton 2010)
    "leaky_relu": nn.LeakyReLU,  # slope 0.01 for x < 0 keeps dead units alive (Maas et al. 2013)
    "prelu": nn.PReLU,  # learned negative slope (He et al. 2015)
    "elu": nn.ELU,  # smooth, negative saturation pushes means to 0 (Clevert et al. 2016)
    "selu": nn.SELU,  # self-normalising with lecun_normal init (Klambauer et al. 2017)
    "gelu": nn.GELU,  # Hendrycks & Gimpel 2016
    "silu": nn.SiLU,  # swish (Ramachandran et al. 2017)
    "softsign": nn.Softsign,  # polynomial saturation, studied by Glorot & Bengio 2010
}.items():
    ACTIVATIONS.add(_name, _factory)

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
