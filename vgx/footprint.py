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


@dataclass(frozen=True)
class DataShape:
    """Examples, time steps (1 for vectors), features per step and outputs of a dataset."""

    examples: int
    steps: int
    features: int
    outputs: int


DATA_SHAPES: dict[str, Callable[[Any, int], DataShape]] = {
    "digits": lambda d, t: DataShape(DIGITS[0], 1, DIGITS[1], DIGITS[2]),
    "synthetic": lambda d, t: DataShape(d.n_train + d.n_test, 1, d.n_features, d.n_classes),
    "adding": lambda d, t: DataShape(d.n_train + d.n_test, t, 2, 1),
    "copy": lambda d, t: DataShape(
        d.n_train + d.n_test, 2 * d.copy_len + t, d.n_symbols + 2, d.n_symbols
    ),
}


def _norm_params(norm: str, width: int) -> int:
    return 0 if norm == "none" else 2 * width  # batch and layer norm: a scale and a shift


def _mlp_params(cfg: Any, shape: DataShape) -> int:
    fan_in = shape.steps * shape.features
    first = fan_in * cfg.width + cfg.width
    rest = (cfg.depth - 1) * (cfg.width * cfg.width + cfg.width)
    return first + rest + cfg.depth * _norm_params(cfg.norm, cfg.width)


def _cnn_params(cfg: Any, shape: DataShape) -> int:
    k2 = cfg.model.kernel_size**2
    first = k2 * cfg.width + cfg.width
    rest = (cfg.depth - 1) * (k2 * cfg.width * cfg.width + cfg.width)
    return first + rest + cfg.depth * _norm_params(cfg.norm, cfg.width)


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
