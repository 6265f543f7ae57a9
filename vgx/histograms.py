"""Per-layer histograms on a log-magnitude scale, so that vanishing values stay visible.

A value x is counted by |x| (the sign is dropped) in one of N_BINS bins, the `bin` column of the
`hist` table (docs/run-directory.md), read off the float32 exponent:

- ZERO (0): exact zeros;
- SUBNORMAL (1): 0 < |x| < 2^-126 ≈ 1.2e-38 (float32 subnormals, 1.4e-45 and up);
- 2 … 255: octaves, bin b holds 2^(b−128) ≤ |x| < 2^(b−127), up to the largest float32 (3.4e38):
  about 3.3 bins per decade, every nonzero finite float32 falls in one, none is clipped;
- INF (256): +Inf and −Inf; NAN (257): NaN.

Edges are exact powers of two: the bin is the exponent bits, so counting takes integer operations
and one bincount on the values' device, with no host sync (on CPU about half the cost of log10
with histc or bucketize, and log10 slows down tenfold on zeros and subnormals). Half precision and
float64 values are counted as float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

ZERO, SUBNORMAL, INF, NAN = 0, 1, 256, 257
N_FINITE = 255  # bins 1 … 255 hold the nonzero finite values
N_BINS = NAN + 1
_ABS, _INF_BITS = 0x7FFFFFFF, 0x7F800000  # float32 bits: all but the sign; +Inf
_LOG10_2 = float(np.log10(2.0))
# What is histogrammed per layer: dL/dW, dL/d(layer output), the activation-function outputs.
QUANTITIES = ("grad", "act_grad", "act")
SCHEMA: dict[str, type] = {
    "step": np.int64,
    "layer": np.int32,
    "quantity": str,
    "bin": np.int16,
    "count": np.int64,
}


def log_histogram(values: Tensor) -> Tensor:
    """Counts of |values| per bin as a float64 vector of N_BINS on the values' device."""
    bits = values.detach().float().reshape(-1).view(torch.int32).bitwise_and(_ABS)
    key = bits >> 23  # the biased exponent: 0 for zeros and subnormals, 255 for Inf and NaN
    key += bits.clamp(max=1)  # + 1 unless zero
    key += bits.sub_(_INF_BITS).clamp_(0, 1)  # + 1 for NaN (in place: bits is done with)
    return torch.bincount(key, minlength=N_BINS).double()


def layer_counts(keys: Sequence[tuple[int, int]], flat: np.ndarray, n_layers: int) -> np.ndarray:
    """(layer, quantity, bin) counts from the transferred vectors, one per (layer, quantity) key
    (a layer called several times, or with several weights, adds up)."""
    counts = np.zeros((n_layers, len(QUANTITIES), N_BINS))
    if keys:
        layer, quantity = np.asarray(keys, np.int64).T
        np.add.at(counts, (layer, quantity), flat.reshape(len(keys), N_BINS))
    return counts


def hist_rows(step: int, counts: np.ndarray) -> dict[str, np.ndarray]:
    """The `hist` table's rows of one step from (layer, quantity, bin) counts; empty bins are
    left out (long and sparse)."""
    layer, quantity, bins = np.nonzero(counts)
    return {
        "step": np.full(len(bins), step, np.int64),
        "layer": layer.astype(np.int32),
        "quantity": np.asarray(QUANTITIES)[quantity],
        "bin": bins.astype(np.int16),
        "count": counts[layer, quantity, bins].astype(np.int64),
    }


def bin_edges(bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log10 of the lower and upper edges of finite bins (1 … N_FINITE); the subnormal bin
    starts at the smallest float32, 2^-149."""
    exponent = np.asarray(bins, np.float64) - 128
    lower = np.where(exponent > -127, exponent, -149) * _LOG10_2
    return lower, (exponent + 1) * _LOG10_2
