"""Model registry: every `model=` choice and the one function that builds it from a config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from vgx.data import SEQUENCE, VECTOR, Dataset
from vgx.data.images import IMAGE_SETS
from vgx.errors import ConfigError
from vgx.models.blocks import SKIPS, Residual
from vgx.models.cnn import CNNNet
from vgx.models.init import (
    GLOROT_UNIFORM,
    INITS,
    PYTORCH_DEFAULT,
    RECURRENT_INITS,
    Init,
    initialise,
)
from vgx.models.layers import ACTIVATIONS, NORMS, Activation
from vgx.models.mlp import MLPNet
from vgx.models.rnn import RecurrentNet
from vgx.models.spec import NetSpec
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
    "Activation",
    "Init",
    "ModelKind",
    "NetSpec",
    "Residual",
    "build_model",
    "fit_data",
    "resolve_init",
]


@dataclass(frozen=True)
class ModelKind:
    """How to build one `model=` choice and which kind of data it reads."""

    build: Callable[..., nn.Module]
    data_kind: str
    options: tuple[str, ...] = ()  # fields of the model config the builder takes
    reads_images: bool = False  # the builder takes the data's (C, H, W) image shape
    keys: tuple[str, ...] = ()  # top-level keys the builder takes besides the shared ones
    auto_init: Init | None = None  # what `init=auto` means here; None: the activation's own


MODELS: Registry[ModelKind] = Registry("model", "network family")
MODELS.add("mlp", ModelKind(MLPNet, VECTOR))
MODELS.add("cnn", ModelKind(CNNNet, VECTOR, ("kernel_size", "stages"), reads_images=True))
# The RNN family keeps PyTorch's own init under `auto`, so the RNN-vs-LSTM story stays the
# architecture's (its gates, not an init, decide how far gradients reach back in time).
for _cell in ("rnn", "lstm", "gru"):
    MODELS.add(_cell, ModelKind(partial(RecurrentNet, _cell), SEQUENCE, auto_init=PYTORCH_DEFAULT))
# Attention projections have no activation after them: `auto` is Glorot's init for every layer,
# the common transformer choice (the Annotated Transformer's xavier_uniform_; xiong2020 pins it).
MODELS.add(
    "transformer",
    ModelKind(TransformerNet, SEQUENCE, keys=("heads", "norm_position"), auto_init=GLOROT_UNIFORM),
)


def resolve_init(init: str, act: str, model: str = "mlp") -> Init:
    """The init a run gets: `init=auto` becomes the one its activation was designed with
    (or the model family's own), every other name is itself."""
    chosen = INITS[init]
    if not chosen.auto:
        return chosen
    return MODELS[model].auto_init or ACTIVATIONS[act].auto_init


def fit_data(model_name: str, dataset: Dataset) -> Dataset:
    """The dataset in the form the model reads; image sets become row sequences for RNNs."""
    kind = MODELS[model_name]
    if kind.data_kind == dataset.kind:
        return dataset
    if kind.data_kind == SEQUENCE:
        return dataset.as_sequence()
    raise ConfigError(
        f"data={dataset.name} does not fit model={model_name}; valid data: digits, synthetic, "
        f"{', '.join(IMAGE_SETS)}"
    )


def build_model(
    cfg: Any, n_features: int, n_outputs: int, image_shape: tuple[int, int, int] | None = None
) -> nn.Module:
    """Build and initialise the model a run config describes; ConfigError for a bad combination."""
    kind = MODELS[cfg.model.name]
    options = {name: cfg.model[name] for name in kind.options}
    if kind.reads_images:
        options["image_shape"] = image_shape
    options.update({name: cfg[name] for name in kind.keys})
    spec = NetSpec(n_features, n_outputs, cfg.depth, cfg.width, cfg.act, cfg.norm, cfg.skip)
    model = kind.build(spec, **options)
    init = resolve_init(cfg.init, cfg.act, cfg.model.name)
    initialise(model, init, cfg.init_std, cfg.recurrent_init, cfg.forget_bias)
    return model
