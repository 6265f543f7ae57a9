"""GradientProbe's definitions (layers, activations, tables) and statistics (norms: norms.py).

Device side (in hooks): each call of a layer leaves a few 0-d tensors, never an activation.
Host side (once per recorded step): numpy over vectors as long as the number of calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from vgx import histograms
from vgx.probe.norms import combine_host

if TYPE_CHECKING:
    from vgx.probe.recurrent import Tape

# Every magnitude is stored as float64, as measured: float32 columns turned a float64 model's
# 1e-51 gradients into 0 (schema version 2; vgx/schema.py reads version 1's float32 columns).
_I32, _I64, _F64 = np.int32, np.int64, np.float64
SCHEMAS: dict[str, dict[str, type]] = {
    "layers": {
        "step": _I64,
        "layer": _I32,
        **dict.fromkeys(("grad_norm", "grad_rms", "act_grad_norm", "weight_norm"), _F64),
        **dict.fromkeys(("update_ratio", "act_mean", "act_std", "saturated"), _F64),
        **dict.fromkeys(("zero_fraction", "dead_units"), _F64),
        "nonfinite": _I64,
    },
    "steps": {"step": _I64, "loss": _F64, "grad_total_norm": _F64, "nonfinite": _I64},
    "time": {
        "step": _I64,
        "layer": _I32,
        "t": _I32,
        **dict.fromkeys(("hidden_grad_norm", "cell_grad_norm", "output_grad_norm"), _F64),
    },
    "hist": histograms.SCHEMA,
}
LAYER_METRICS = tuple(name for name in SCHEMAS["layers"] if name not in ("step", "layer"))


KINDS: tuple[tuple[tuple[type[nn.Module], ...], str], ...] = (
    ((nn.Linear,), "linear"),
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), "conv"),
    ((nn.RNN, nn.RNNCell), "rnn"),
    ((nn.LSTM, nn.LSTMCell), "lstm"),
    ((nn.GRU, nn.GRUCell), "gru"),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm), "norm"),
    ((nn.LayerNorm, nn.GroupNorm), "norm"),
)
LAYER_COLUMNS = ("layer", "name", "kind", "params", "fan_in", "fan_out")


@dataclass
class Layer:
    """A module that owns weights: the unit of the `layers` table."""

    name: str
    kind: str
    module: nn.Module
    weights: list[nn.Parameter]
    fused_rnn: bool  # nn.RNN/LSTM/GRU: time steps are a dimension of the output
    cell: bool  # nn.RNNCell/LSTMCell/GRUCell: time step t is the t-th call


def find_layers(model: nn.Module) -> list[Layer]:
    """Modules that own weights, in registration order."""
    layers = []
    for name, module in model.named_modules():
        kind = next((k for classes, k in KINDS if isinstance(module, classes)), None)
        weights = [p for n, p in module.named_parameters(recurse=False) if n.startswith("weight")]
        if kind is not None and weights:  # not e.g. LayerNorm(elementwise_affine=False)
            fused = isinstance(module, nn.RNNBase)
            cell = isinstance(module, nn.RNNCellBase)
            layers.append(Layer(name, kind, module, weights, fused, cell))
    return layers


def fans(weight: Tensor) -> tuple[int, int]:
    """torch.nn.init's fan_in/fan_out; a 1-D (norm) weight has both equal to its size."""
    if weight.dim() < 2:
        return weight.numel(), weight.numel()
    receptive = weight[0][0].numel()
    return weight.shape[1] * receptive, weight.shape[0] * receptive


class Sink(Protocol):
    """Where rows go, e.g. vgx.store.MetricsWriter."""

    def append(self, table: str, columns: Mapping[str, np.ndarray]) -> None: ...


class MemorySink:
    """The default sink: keeps the rows for `GradientProbe.frames()`."""

    def __init__(self) -> None:
        self._parts: dict[str, list[Mapping[str, np.ndarray]]] = {t: [] for t in SCHEMAS}

    def append(self, table: str, columns: Mapping[str, np.ndarray]) -> None:
        self._parts[table].append(columns)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            table: pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
            if parts
            else empty_frame(table)
            for table, parts in self._parts.items()
        }


@dataclass(frozen=True)
class Shape:
    """What an activation's output tells about its derivative."""

    # (center, bound): the derivative is below 5% of its maximum exactly where |y - center| > bound
    saturation: tuple[float, float] | None = None
    dead: bool = False  # exact zeros mean a zero derivative (ReLU family)
    nonnegative: bool = False  # never below 0 (ReLU, ReLU6)


RAW = Shape()  # a layer's own output: neither statistic is defined
_RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)
_SMOOTH = (nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.LogSigmoid)
_PIECEWISE = (nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Hardshrink, nn.Softshrink)
# Elementwise activation modules, most specific first (ReLU6 subclasses Hardtanh).
ACTIVATIONS: tuple[tuple[type[nn.Module], Shape], ...] = (
    (nn.Sigmoid, Shape(saturation=(0.5, 0.5 * math.sqrt(0.95)))),  # y(1-y) < 0.05 * 1/4
    (nn.Tanh, Shape(saturation=(0.0, math.sqrt(0.95)))),  # 1 - y² < 0.05
    (nn.Softsign, Shape(saturation=(0.0, 1.0 - math.sqrt(0.05)))),  # (1 - |y|)² < 0.05
    *((cls, Shape(dead=True, nonnegative=True)) for cls in (nn.ReLU, nn.ReLU6)),
    *((cls, Shape(dead=True)) for cls in _RELU_FAMILY),
    *((cls, RAW) for cls in (*_SMOOTH, *_PIECEWISE, nn.Tanhshrink, nn.Threshold)),
)


def activation_shape(module: nn.Module) -> Shape | None:
    """The module's Shape if it is an elementwise activation, else None."""
    return next((shape for cls, shape in ACTIVATIONS if isinstance(module, cls)), None)


@dataclass
class Record:
    """What the hooks gather during one recorded forward and backward pass: small tensors only."""

    calls: list[int]  # forward calls per layer so far
    seen: dict[int, None] = field(default_factory=dict)  # layers in first-call order
    pending: tuple[int, Tensor] | None = None  # last layer output, until an activation claims it
    stats: list[Stats] = field(default_factory=list)  # per call
    grads: list[tuple[int, int, Tensor]] = field(default_factory=list)  # (layer, call, norms)
    kept: list[tuple[int, int, Tensor]] = field(default_factory=list)  # (layer, call, gradient)
    hooked: set[int] = field(default_factory=set)  # layers whose output joined the graph
    steps: dict[int, int] = field(default_factory=dict)  # time steps of fused recurrent layers
    hist: bool = False  # whether this step takes histograms
    detail: bool = True  # whether this step records activations, updates and time (schedule.py)
    hists: list[tuple[int, int, Tensor]] = field(default_factory=list)  # (layer, quantity, counts)
    tapes: list[tuple[int, Tape]] = field(default_factory=list)  # fused recurrent calls


@dataclass(frozen=True)
class Stats:
    """One call's activation statistics: Σy, Σy² and a count, and what the count counts."""

    layer: int
    numel: int
    sums: Tensor  # (3,) float64: Σy, Σy², the count of `extra` (0 without)
    extra: str | None  # "saturated" (units counted), "dead" (nonzero units counted) or None
    units: int = 0  # "dead": units per example (all but the batch dimension)
    dead_units: Tensor | None = None  # "dead": 0-d float64, units zero for every example


def statistics(index: int, output: Tensor, shape: Shape) -> Stats:
    """One call's activation statistics as a 3-vector on the device (no host sync).

    Σy and Σy² accumulate in float64 (every float32 or half square is exact there: the spread
    of collapsed units and tiny activations survive; the variance is Σy²/n − mean² on the
    host). One fused reduction each: a single Gram matrix of the rows (1, y, indicator) took
    37 µs for 32K elements on one thread, these three kernels about 20 µs.
    """
    y = output.detach().reshape(-1)  # a view, unless the layout is not contiguous
    extra = "saturated" if shape.saturation is not None else "dead" if shape.dead else None
    total = y.sum(dtype=torch.float64)
    squares = torch.linalg.vector_norm(y, dtype=torch.float64).square()
    if shape.saturation is not None:
        center, bound = shape.saturation
        count = torch.sub(y, center).abs_().gt_(bound).sum(dtype=torch.float64)
    elif shape.dead:
        count = torch.count_nonzero(y).to(torch.float64)
    else:
        count = torch.zeros((), dtype=torch.float64, device=y.device)
    sums = torch.stack([total, squares, count])
    if shape.dead:
        return Stats(index, y.numel(), sums, extra, *dead_units(output, shape.nonnegative))
    return Stats(index, y.numel(), sums, extra)


def dead_units(output: Tensor, nonnegative: bool) -> tuple[int, Tensor]:
    """Units (all dimensions but the first, the batch) that are zero for every example: dead in
    the usual sense, unlike the zero fraction, which is about 0.5 in any healthy ReLU layer.
    A non-negative activation (ReLU, ReLU6) is zero for every example where its largest is."""
    per_example = output.detach().reshape(output.shape[0] if output.dim() > 1 else 1, -1)
    if nonnegative:
        alive = per_example.amax(0).gt(0).sum(dtype=torch.float64)
    else:
        alive = per_example.ne(0).any(0).sum(dtype=torch.float64)
    return per_example.shape[1], per_example.shape[1] - alive


def stack_record(record: Record) -> dict[str, Tensor]:
    """The hooks' scalars as a few vectors, ready for the step's single host transfer."""
    pieces = {}
    if record.grads:
        pieces["out_grads"] = torch.cat([values for _, _, values in record.grads])
    if record.stats:
        pieces["sums"] = torch.cat([s.sums for s in record.stats])
        dead = [s.dead_units for s in record.stats if s.dead_units is not None]
        if dead:
            pieces["dead_units"] = torch.stack(dead)
    if record.hists:
        pieces["hist"] = torch.cat([counts for _, _, counts in record.hists])
    return pieces


def to_host(pieces: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """All device values in one transfer: one host sync per recorded step."""
    if not pieces:
        return {}
    flat = torch.cat([p.reshape(-1) for p in pieces.values()]).cpu().numpy().astype(_F64)
    bounds = np.cumsum([0, *(p.numel() for p in pieces.values())])
    return {name: flat[a:b] for name, a, b in zip(pieces, bounds[:-1], bounds[1:], strict=True)}


def output_grad_metrics(
    record: Record, host: Mapping[str, np.ndarray], n_layers: int, scale: float, cells: set[int]
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """act_grad_norm per layer, and each recurrent layer's output gradient per time step.

    Norms combine over calls as their squares add up; a layer whose output was in the graph but
    got no gradient has norm 0, one that never joined a graph NaN. A cell's t-th call is its time
    step t.
    """
    norms = host.get("out_grads", np.zeros(0)) / scale
    lengths = dict(record.steps)
    lengths.update({i: record.calls[i] for i in record.hooked & cells})
    starts = dict(zip(lengths, np.cumsum([0, *lengths.values()])[:-1].tolist(), strict=True))
    layer = np.zeros(len(norms), dtype=np.int64)
    position = np.full(len(norms), -1, dtype=np.int64)  # in the series of all layers, or -1
    start = 0
    for index, call, part in record.grads:
        chunk = slice(start, start + part.numel())
        start += part.numel()
        layer[chunk] = index
        if index in record.steps:
            position[chunk] = starts[index] + np.arange(part.numel())
        elif index in starts:
            position[chunk] = starts[index] + call
    timed = position >= 0
    series = combine_host(norms[timed], position[timed], sum(lengths.values()))
    hooked = np.zeros(n_layers, dtype=bool)
    hooked[list(record.hooked)] = True
    per_layer = np.where(hooked, combine_host(norms, layer, n_layers), np.nan)
    return per_layer, {i: series[a : a + lengths[i]] for i, a in starts.items()}


def activation_metrics(
    record: Record, host: Mapping[str, np.ndarray], n_layers: int
) -> dict[str, np.ndarray]:
    """act_mean, act_std, saturated, zero_fraction, dead_units per layer, pooled over calls; plus
    act_nonfinite."""
    layer = np.array([s.layer for s in record.stats], dtype=np.int64)
    count = np.array([s.numel for s in record.stats], dtype=_F64)
    sat, dead = (np.array([s.extra == e for s in record.stats]) for e in ("saturated", "dead"))
    sums = host["sums"].reshape(-1, 3)
    total, squares = sums[:, 0], sums[:, 1]
    counts = sat | dead
    counted = sums[counts, 2]
    per_layer = partial(np.bincount, minlength=n_layers)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0: a layer without such calls
        units = per_layer(layer, count)
        mean = per_layer(layer, total) / units
        # Pooled over calls; rounding can leave a collapsed layer's variance a hair below 0.
        variance = np.maximum(per_layer(layer, squares) / units - mean**2, 0.0)
        extra = np.zeros(len(layer))
        extra[counts] = counted  # saturated units, or nonzero ones
        saturated = per_layer(layer[sat], extra[sat])
        zeros = per_layer(layer[dead], count[dead] - extra[dead])
        widths = np.array([s.units for s in record.stats], dtype=_F64)[dead]
        never = host["dead_units"] if "dead_units" in host else np.zeros(0)
        return {
            "act_mean": mean,
            "act_std": np.sqrt(variance),
            "saturated": saturated / per_layer(layer[sat], count[sat]),
            "zero_fraction": zeros / per_layer(layer[dead], count[dead]),
            "dead_units": per_layer(layer[dead], never) / per_layer(layer[dead], widths),
            "act_nonfinite": ~np.isfinite(variance),
        }


def typed(table: str, columns: Mapping[str, Any], rows: int) -> dict[str, np.ndarray]:
    """Columns with the schema's dtypes; scalars are repeated to `rows`."""
    return {
        name: np.full(rows, value, dtype) if np.ndim(value) == 0 else np.asarray(value, dtype)
        for name, dtype in SCHEMAS[table].items()
        for value in (columns[name],)
    }


def empty_frame(table: str) -> pd.DataFrame:
    return pd.DataFrame({name: np.empty(0, dtype) for name, dtype in SCHEMAS[table].items()})
