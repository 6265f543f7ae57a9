"""The record of one probed step: what the hooks gather (small tensors only), the step's one
transfer to the host, and the output gradients per layer and per time step from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from vgx.probe.activations import Stats
from vgx.probe.norms import combine_host

if TYPE_CHECKING:
    from vgx.probe.recurrent import Tape


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
    """All device values in one transfer: one host sync per recorded step (on CPU, where
    nothing transfers, each piece as it is: the concatenation cost 0.1 ms a step)."""
    if not pieces:
        return {}
    if all(p.device.type == "cpu" for p in pieces.values()):
        return {
            name: p.detach().reshape(-1).numpy().astype(np.float64) for name, p in pieces.items()
        }
    flat = torch.cat([p.reshape(-1) for p in pieces.values()]).cpu().numpy().astype(np.float64)
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
