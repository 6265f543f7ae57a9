"""Model registry: every `model=` choice and the one function that builds it from a config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from vgx.data import SEQUENCE, VECTOR, Dataset
from vgx.errors import ConfigError
from vgx.models.cnn import CNNNet
from vgx.models.init import INITS, RECURRENT_INITS, initialise
from vgx.models.layers import ACTIVATIONS, NORMS, SKIPS, Residual
from vgx.models.mlp import MLPNet
from vgx.models.rnn import RecurrentNet
from vgx.models.transformer import NORM_POSITIONS, TransformerNet
from vgx.registry import Registry

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "MODELS",
    "NORMS",
    "NORM_POSITIONS",
    "RECURRENT_INITS",
    "SKIPS",
    "ModelKind",
    "Residual",
    "build_model",
    "fit_data",
]


@dataclass(frozen=True)
class ModelKind:
    """How to build one `model=` choice and which kind of data it reads."""

    build: Callable[..., nn.Module]
    data_kind: str
    options: tuple[str, ...] = ()  # fields of the model config the builder takes
    keys: tuple[str, ...] = ()  # top-level keys the builder takes besides the shared ones


MODELS: Registry[ModelKind] = Registry("model", "network family")
MODELS.add("mlp", ModelKind(MLPNet, VECTOR))
MODELS.add("cnn", ModelKind(CNNNet, VECTOR, ("kernel_size",)))
for _cell in ("rnn", "lstm", "gru"):
    MODELS.add(_cell, ModelKind(partial(RecurrentNet, _cell), SEQUENCE))
MODELS.add("transformer", ModelKind(TransformerNet, SEQUENCE, keys=("heads", "norm_position")))


def fit_data(model_name: str, dataset: Dataset) -> Dataset:
    """The dataset in the form the model reads; image sets become row sequences for RNNs."""
    kind = MODELS[model_name]
    if kind.data_kind == dataset.kind:
        return dataset
    if kind.data_kind == SEQUENCE:
        return dataset.as_sequence()
    raise ConfigError(
        f"data={dataset.name} does not fit model={model_name}; valid data: digits, synthetic"
    )


def build_model(cfg: Any, n_features: int, n_outputs: int) -> nn.Module:
    """Build and initialise the model a run config describes; ConfigError for a bad combination."""
    kind = MODELS[cfg.model.name]
    options = {name: cfg.model[name] for name in kind.options}
    options.update({name: cfg[name] for name in kind.keys})
    model = kind.build(
        n_features=n_features,
        n_outputs=n_outputs,
        depth=cfg.depth,
        width=cfg.width,
        act=cfg.act,
        norm=cfg.norm,
        skip=cfg.skip,
        **options,
    )
    initialise(model, cfg.init, cfg.init_std, cfg.recurrent_init, cfg.forget_bias)
    return model
