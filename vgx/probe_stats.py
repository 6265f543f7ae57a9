"""GradientProbe's definitions (layers, activations, tables) and arithmetic.

Device side (in hooks): each call of a layer leaves a few 0-d tensors, never an activation.
Host side (once per recorded step): numpy over vectors as long as the number of calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._foreach_utils import _group_tensors_by_device_and_dtype

_F32, _I32, _I64, _F64 = np.float32, np.int32, np.int64, np.float64
SCHEMAS: dict[str, dict[str, type]] = {
    "layers": {
        "step": _I64,
        "layer": _I32,
        **dict.fromkeys(("grad_norm", "grad_rms", "act_grad_norm", "weight_norm"), _F32),
        **dict.fromkeys(("update_ratio", "act_mean", "act_std", "saturated", "dead"), _F32),
        "nonfinite": _I64,
    },
    "steps": {"step": _I64, "loss": _F64, "grad_total_norm": _F64, "nonfinite": _I64},
    "time": {"step": _I64, "layer": _I32, "t": _I32, "hidden_grad_norm": _F32},
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


RAW = Shape()  # a layer's own output: neither statistic is defined
_RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)
_SMOOTH = (nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.LogSigmoid)
_PIECEWISE = (nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Hardshrink, nn.Softshrink)
# Elementwise activation modules, most specific first (ReLU6 subclasses Hardtanh).
ACTIVATIONS: tuple[tuple[type[nn.Module], Shape], ...] = (
    (nn.Sigmoid, Shape(saturation=(0.5, 0.5 * math.sqrt(0.95)))),  # y(1-y) < 0.05 * 1/4
    (nn.Tanh, Shape(saturation=(0.0, math.sqrt(0.95)))),  # 1 - y² < 0.05
    (nn.Softsign, Shape(saturation=(0.0, 1.0 - math.sqrt(0.05)))),  # (1 - |y|)² < 0.05
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
    # per call: (layer, numel, mean, ‖y − mean‖, saturated count or None, nonzero count or None)
    stats: list[tuple[int, int, Tensor, Tensor, Tensor | None, Tensor | None]] = field(
        default_factory=list
    )
    grads: list[tuple[int, int, Tensor]] = field(default_factory=list)  # (layer, call, norms)
    hooked: set[int] = field(default_factory=set)  # layers whose output joined the graph
    steps: dict[int, int] = field(default_factory=dict)  # time steps of fused recurrent layers


def statistics(index: int, output: Tensor, shape: Shape) -> tuple[Any, ...]:
    """One call's activation statistics as 0-d tensors (no host sync)."""
    y = widen(output.detach())
    mean = y.mean()
    # Two passes (mean, then ‖y − mean‖) rather than var_mean, whose Welford loop is ~10× slower
    # on CPU; a one-pass sum of squares would lose the variance of collapsed (saturated) units.
    spread = torch.linalg.vector_norm(y - mean)
    # Counts are sums of sign(): about 3× faster on CPU than count_nonzero or a boolean sum.
    saturated = None
    if shape.saturation is not None:
        center, bound = shape.saturation
        offset = y.abs() if center == 0 else (y - center).abs_()
        saturated = F.threshold_(offset, bound, 0.0).sign_().sum()  # |y − c| <= bound (or NaN): 0
    nonzero = y.sign().abs_().sum() if shape.dead else None
    return index, y.numel(), mean, spread, saturated, nonzero


def widen(values: Tensor) -> Tensor:
    """Half precision (autocast) as float32: its 3 significant digits cannot hold a variance."""
    return values.float() if values.element_size() < 4 else values


def total_norm(grad: Tensor) -> Tensor:
    return torch.linalg.vector_norm(widen(grad)).reshape(1)


def step_norms(dims: list[int], grad: Tensor) -> Tensor:
    return torch.linalg.vector_norm(widen(grad), dim=dims)


def packed_step_norms(rows: Tensor, steps: int, grad: Tensor) -> Tensor:
    """Per time step norms of a PackedSequence's data (`rows` gives each row's time step)."""
    row_sq = torch.linalg.vector_norm(widen(grad), dim=1).square()
    sums = torch.zeros(steps, dtype=row_sq.dtype, device=row_sq.device)
    return sums.index_add_(0, rows, row_sq).sqrt()


def norms(tensors: list[Tensor]) -> Tensor:
    """The L2 norm of each tensor as one vector, without a host sync (as clip_grad_norm_)."""
    if not tensors:
        return torch.zeros(0)
    out = torch.empty(len(tensors), device=tensors[0].device)
    groups = _group_tensors_by_device_and_dtype([tensors], with_indices=True)
    for (device, dtype), ((group,), indices) in groups.items():
        if device.type == "cpu" and dtype in (torch.float32, torch.float64):
            # On CPU a loop of BLAS dot products is ~2× faster than _foreach_norm's loop of norm
            # kernels (2 threads, 50 tensors of 256×256), and as precise.
            flat = [t.reshape(-1) for t in group]
            values = torch.stack([torch.vdot(v, v) for v in flat]).sqrt()
        else:
            # One fused kernel per group on accelerators; half precision accumulates in float32
            # since a half norm overflows at 65504.
            acc = torch.float32 if dtype.itemsize < 4 else None
            values = torch.stack(torch._foreach_norm(group, 2, dtype=acc))
        out[indices] = values.to(out)
    return out


def stack_record(record: Record) -> dict[str, Tensor]:
    """The hooks' scalars as a few vectors, ready for the step's single host transfer."""
    pieces = {}
    if record.grads:
        pieces["out_grads"] = torch.cat([values for _, _, values in record.grads])
    for key, column in (("mean", 2), ("spread", 3), ("saturated", 4), ("nonzero", 5)):
        values = [s[column] for s in record.stats if s[column] is not None]
        if values:
            pieces[key] = torch.stack(values)
    return pieces


def to_host(pieces: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """All device values in one transfer: one host sync per recorded step."""
    if not pieces:
        return {}
    device = next(iter(pieces.values())).device
    flat = torch.cat([p.reshape(-1).to(device, torch.float64) for p in pieces.values()])
    bounds = np.cumsum([p.numel() for p in pieces.values()])[:-1]
    return dict(zip(pieces, np.split(flat.cpu().numpy(), bounds), strict=True))


def output_grad_metrics(
    record: Record, host: Mapping[str, np.ndarray], n_layers: int, scale: float, cells: set[int]
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """act_grad_norm per layer, and hidden_grad_norm per time step of each recurrent layer.

    Squared norms add up over calls; a layer whose output was in the graph but got no gradient
    has norm 0, one that never joined a graph NaN. A cell's t-th call is its time step t.
    """
    squares = np.zeros(n_layers)
    series = {i: np.zeros(n) for i, n in record.steps.items()}
    series.update({i: np.zeros(record.calls[i]) for i in record.hooked & cells})
    values = host.get("out_grads", np.zeros(0)) / scale
    start = 0
    for index, call, part in record.grads:
        chunk = values[start : start + part.numel()] ** 2
        start += part.numel()
        squares[index] += chunk.sum()
        if index in record.steps:
            series[index][: len(chunk)] += chunk
        elif index in series:
            series[index][call] += chunk[0]
    hooked = np.zeros(n_layers, dtype=bool)
    hooked[list(record.hooked)] = True
    return np.where(hooked, np.sqrt(squares), np.nan), {i: np.sqrt(s) for i, s in series.items()}


def activation_metrics(
    record: Record, host: Mapping[str, np.ndarray], n_layers: int
) -> dict[str, np.ndarray]:
    """act_mean, act_std, saturated, dead per layer, pooled over calls; plus act_nonfinite."""
    layer = np.array([s[0] for s in record.stats], dtype=np.int64)
    count = np.array([s[1] for s in record.stats], dtype=_F64)
    per_layer = lambda index, weights: np.bincount(index, weights, minlength=n_layers)  # noqa: E731
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0: a layer without such calls
        total = per_layer(layer, count)
        mean = per_layer(layer, count * host.get("mean", 0.0)) / total
        # Chan et al.'s pooled variance: within-call spread plus the spread of the call means.
        m2 = host.get("spread", 0.0) ** 2 + count * (host.get("mean", 0.0) - mean[layer]) ** 2
        m2_sum = per_layer(layer, m2)
        out = {
            "act_mean": mean,
            "act_std": np.sqrt(m2_sum / total),
            "act_nonfinite": ~np.isfinite(m2_sum),
        }
        for name, column, key in (("saturated", 4, "saturated"), ("dead", 5, "nonzero")):
            has = np.array([s[column] is not None for s in record.stats], dtype=bool)
            hits = host.get(key, np.zeros(0))
            if name == "dead":
                hits = count[has] - hits
            out[name] = per_layer(layer[has], hits) / per_layer(layer[has], count[has])
    return out


def typed(table: str, columns: Mapping[str, Any], rows: int) -> dict[str, np.ndarray]:
    """Columns with the schema's dtypes; scalars are repeated to `rows`."""
    return {
        name: np.full(rows, value, dtype) if np.ndim(value) == 0 else np.asarray(value, dtype)
        for name, dtype in SCHEMAS[table].items()
        for value in (columns[name],)
    }


def empty_frame(table: str) -> pd.DataFrame:
    return pd.DataFrame({name: np.empty(0, dtype) for name, dtype in SCHEMAS[table].items()})
