"""Per-layer histograms on a log10-magnitude scale, so that vanishing values stay visible.

A value x is counted by |x| (the sign is dropped) in one of N_BINS bins, the `bin` column of the
`hist` table (docs/run-directory.md):

- ZERO (0): exact zeros;
- 1 … N_FINITE: quarter decades, bin b holds 10^(LOW + (b−1)/4) ≤ |x| < 10^(LOW + b/4), from 1e-46
  to 1e39: every nonzero finite float32, subnormals included, so no value is clipped into an edge
  bin (edges are exact to float32 log10; float64 values are counted as float32);
- INF: +Inf and −Inf; NAN: NaN.

Counting runs on the values' device (log10, then bincount), with no host sync: the probe moves
the counts to the host with the rest of the step's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

PER_DECADE = 4
LOW, HIGH = -46, 39  # log10 range of the finite bins
N_FINITE = (HIGH - LOW) * PER_DECADE
ZERO, INF, NAN = 0, N_FINITE + 1, N_FINITE + 2
N_BINS = N_FINITE + 3
# What is histogrammed per layer: dL/dW, dL/d(layer output), the activation-function outputs.
QUANTITIES = ("grad", "act_grad", "act")
SCHEMA: dict[str, type] = {
    "step": np.int64,
    "layer": np.int32,
    "quantity": str,
    "bin": np.int16,
    "count": np.int64,
}


def _log10_at(b: int) -> float:
    """A log10 magnitude in the middle of bin b (used to place zeros, Inf and NaN)."""
    return LOW + (b - 0.5) / PER_DECADE


def log_histogram(values: Tensor) -> Tensor:
    """Counts of |values| per bin as a float64 vector of N_BINS on the values' device."""
    key = values.detach().float().abs().log10_()  # a new tensor: the values stay untouched
    key.nan_to_num_(nan=_log10_at(NAN), posinf=_log10_at(INF), neginf=_log10_at(ZERO))
    # bin b holds keys in [b, b + 1): float → int truncation is floor for these positive keys
    key.mul_(PER_DECADE).add_(1 - PER_DECADE * LOW)
    return torch.bincount(key.to(torch.int32).reshape(-1), minlength=N_BINS).double()


def hist_rows(step: int, counts: np.ndarray, layers: Sequence[int]) -> dict[str, np.ndarray]:
    """The `hist` table's rows of one step; `counts` is (layer, quantity, bin), its first axis
    in the order of `layers`. Empty bins are left out (long and sparse)."""
    row, quantity, bins = np.nonzero(counts)
    return {
        "step": np.full(len(bins), step, np.int64),
        "layer": np.asarray(layers, np.int32)[row],
        "quantity": np.asarray(QUANTITIES)[quantity],
        "bin": bins.astype(np.int16),
        "count": counts[row, quantity, bins].astype(np.int64),
    }


def bin_edges(bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log10 of the lower and upper edges of finite bins (1 … N_FINITE)."""
    lower = LOW + (np.asarray(bins, np.float64) - 1) / PER_DECADE
    return lower, lower + 1 / PER_DECADE
