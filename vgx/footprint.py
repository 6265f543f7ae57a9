"""How much memory a run will take, worked out from its config's numbers alone.

Validation must not build a model to learn it is too big: `depth=1000000` once built a million
modules (60 s, 3.6 GB) before any error. Parameter counts here are exact for the layers vgx
builds (tests compare them with built models); activation and data sizes are upper estimates.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vgx.data import SEQUENCE
from vgx.models import MODELS

FLOAT = 4  # bytes: models and data are float32
# Bytes per parameter: the weight, its gradient, the optimizer's state (Adam keeps two) and the
# probe's copy of the previous weight (update ratios).
PARAM_BYTES = 5 * FLOAT
DIGITS = (1797, 64, 10)  # scikit-learn's digits: examples, features (8 x 8), classes
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
IMAGE_CHANNELS = {"cifar10": 3}  # the other image sets are grey
IMAGE_SIZES = {"mnist": (70000, 784), "fashion_mnist": (70000, 784), "cifar10": (60000, 3072)}


@dataclass(frozen=True)
class DataShape:
    """Examples, time steps (1 for vectors), features per step and outputs of a dataset."""

    examples: int
    steps: int
    features: int
    outputs: int


def _image_shape(size: tuple[int, int]) -> Callable[[Any, int], DataShape]:
    """An image set's shape: the whole files are read before n_train, n_test choose from them."""
    return lambda d, t: DataShape(size[0], 1, size[1], 10)


DATA_SHAPES: dict[str, Callable[[Any, int], DataShape]] = {
    "digits": lambda d, t: DataShape(DIGITS[0], 1, DIGITS[1], DIGITS[2]),
    "synthetic": lambda d, t: DataShape(d.n_train + d.n_test, 1, d.n_features, d.n_classes),
    "adding": lambda d, t: DataShape(d.n_train + d.n_test, t, 2, 1),
    "copy": lambda d, t: DataShape(
        d.n_train + d.n_test, 2 * d.copy_len + t, d.n_symbols + 2, d.n_symbols
    ),
    **{name: _image_shape(size) for name, size in IMAGE_SIZES.items()},
}


def _norm_params(norm: str, width: int) -> int:
    return 0 if norm == "none" else 2 * width  # batch and layer norm: a scale and a shift


def _block_params(cfg: Any, weight: Callable[[int, int], int], fan_in: int, fan_out: int) -> int:
    """One block of vgx.models.blocks: two weight layers and their two norms (skip=none on an
    MLP: one of each); a preact block normalises its input's width first."""
    if cfg.model.name == "mlp" and cfg.skip == "none":
        return weight(fan_in, fan_out) + _norm_params(cfg.norm, fan_out)
    first_norm = fan_in if cfg.skip == "preact" else fan_out
    norms = _norm_params(cfg.norm, first_norm) + _norm_params(cfg.norm, fan_out)
    return weight(fan_in, fan_out) + weight(fan_out, fan_out) + norms


def _stem_and_final(cfg: Any, weight: int, width: int, last: int) -> int:
    """The stem (with its norm, except for preact) and preact's norm after the last block."""
    return weight + _norm_params(cfg.norm, last if cfg.skip == "preact" else width)


def _mlp_params(cfg: Any, shape: DataShape) -> int:
    w = cfg.width

    def linear(fan_in: int, fan_out: int) -> int:
        return fan_in * fan_out + fan_out

    stem = _stem_and_final(cfg, linear(shape.steps * shape.features, w), w, w)
    return stem + (cfg.depth - 1) * _block_params(cfg, linear, w, w)


def _cnn_params(cfg: Any, shape: DataShape) -> int:
    k2, w, stages = cfg.model.kernel_size**2, cfg.width, cfg.model.stages

    def conv(fan_in: int, fan_out: int) -> int:
        return k2 * fan_in * fan_out + fan_out

    last = w * 2 ** (stages - 1)
    total = _stem_and_final(cfg, conv(IMAGE_CHANNELS.get(cfg.data.name, 1), w), w, last)
    for stage in range(stages):
        fan_out = w * 2**stage
        total += _block_params(cfg, conv, fan_out // 2 if stage else w, fan_out)
        total += (cfg.depth - 1) * _block_params(cfg, conv, fan_out, fan_out)
    return total + (last - w) * shape.outputs  # the head reads the last stage's channels


def _recurrent_params(cfg: Any, shape: DataShape) -> int:
    gates, width = GATES[cfg.model.name], cfg.width
    per_layer = [gates * width * (fan_in + width + 2) for fan_in in (shape.features, width)]
    layers = per_layer[0] + (cfg.depth - 1) * per_layer[1]
    return layers + cfg.depth * _norm_params(cfg.norm, width)


def _transformer_params(cfg: Any, shape: DataShape) -> int:
    w = cfg.width
    # attention (4 w x w linears), the feed-forward (w -> 4w -> w), two LayerNorms per block
    block = 4 * (w * w + w) + (4 * w * w + 4 * w) + (4 * w * w + w) + 2 * 2 * w
    final_norm = 2 * w if cfg.norm_position == "pre" else 0
    return shape.features * w + w + cfg.depth * block + final_norm


def _as_sequence(shape: DataShape) -> DataShape:
    """Image rows as time steps, as vgx.data.Dataset.as_sequence reads a vector set."""
    if shape.steps > 1:
        return shape
    side = max(1, int(shape.features**0.5))
    return DataShape(shape.examples, side, side, shape.outputs)


# model -> (parameters of its blocks (the head apart), floats kept per example and block)
MODEL_SIZES: dict[str, tuple[Callable[[Any, DataShape], int], Callable[[Any, DataShape], int]]] = {
    "mlp": (_mlp_params, lambda cfg, s: 4 * cfg.width),  # linear, norm, activation, its grad
    "cnn": (_cnn_params, lambda cfg, s: 4 * cfg.width * s.features),  # the same per pixel
    **{
        cell: (_recurrent_params, lambda cfg, s: (GATES[cfg.model.name] + 2) * cfg.width * s.steps)
        for cell in GATES
    },
    # q, k, v, attention output, feed-forward (4w twice), norms; and each head's T x T weights
    "transformer": (
        _transformer_params,
        lambda cfg, s: s.steps * (16 * cfg.width + cfg.heads * s.steps),
    ),
}


@dataclass(frozen=True)
class Footprint:
    """Parameters and bytes a run needs at its peak."""

    parameters: int
    activation_bytes: int
    data_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.parameters * PARAM_BYTES + self.activation_bytes + self.data_bytes


def footprint(cfg: Any) -> Footprint | None:
    """What `cfg` needs, or None for a model or dataset this module has no formula for."""
    sizes, data = MODEL_SIZES.get(cfg.model.name), DATA_SHAPES.get(cfg.data.name)
    if sizes is None or data is None:
        return None
    shape = data(cfg.data, cfg.seq_len)
    if MODELS[cfg.model.name].data_kind == SEQUENCE:
        shape = _as_sequence(shape)
    count, per_layer = sizes
    head = cfg.width * shape.outputs + shape.outputs
    # Training keeps one batch's activations for backward; evaluation runs the whole test split
    # at once without them, two layers alive at a time.
    rows = max(cfg.batch_size * cfg.depth, 2 * min(cfg.data.n_test, shape.examples))
    # Generating a dataset holds a few copies at once (numpy, one-hot, torch).
    data_bytes = 3 * shape.examples * shape.steps * shape.features * FLOAT
    return Footprint(count(cfg, shape) + head, rows * per_layer(cfg, shape) * FLOAT, data_bytes)


def free_memory(device: torch.device) -> tuple[int, str] | None:
    """Bytes free on `device` and where the figure comes from; None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0], f"free on {torch.cuda.get_device_name(device)}"
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable"
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free RAM"
    except (ValueError, OSError, AttributeError):
        return None
