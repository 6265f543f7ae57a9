"""Per-run gradient summary: how many decades gradients fall (or grow) from output to input.

Computed from the raw metrics tables so the training loop (at the end of a run) and the reporter
(for any run, finished or not) get the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

NORM_KIND = "norm"  # normalisation layers: their own kind, excluded from first/last layer

SUMMARY_KEYS = (
    "vanishing_ratio_grad_init",
    "vanishing_ratio_grad_end",
    "vanishing_ratio_act_init",
    "vanishing_ratio_act_end",
    "min_grad_norm_init",
    "min_grad_norm_end",
    "steps_to_half_loss",
)


def gradient_summary(
    layers: pd.DataFrame, layer_table: pd.DataFrame, steps: pd.DataFrame | None = None
) -> dict[str, float]:
    """One run's gradient numbers for summary tables (the keys of SUMMARY_KEYS).

    `vanishing_ratio_*` is log10(first layer / last layer) at the first and last probed step, for
    the weight gradient (`grad`) and the activation gradient (`act`): the weight ratio alone hides
    uniform vanishing. A value of exactly 0 is a result (±inf), NaN means "not recorded".
    """
    first, last = _end_layers(layer_table)
    result: dict[str, float] = {}
    for stage, at_step in zip(("init", "end"), _first_and_last_step(layers), strict=True):
        for key, metric in (("grad", "grad_norm"), ("act", "act_grad_norm")):
            result[f"vanishing_ratio_{key}_{stage}"] = log10_ratio(
                _value(at_step, first, metric), _value(at_step, last, metric)
            )
        result[f"min_grad_norm_{stage}"] = _nanmin(at_step, "grad_norm")
    result["steps_to_half_loss"] = _steps_to_half_loss(steps)
    return {key: result[key] for key in SUMMARY_KEYS}


def log10_ratio(first: float, last: float) -> float:
    """log10(first / last) where an underflowed 0 is a result (±inf) and NaN means missing."""
    if math.isnan(first) or math.isnan(last):
        return math.nan
    if first == 0:
        return -math.inf
    if last == 0:
        return math.inf
    if math.isinf(first) and math.isinf(last):
        return math.nan
    return math.log10(first) - math.log10(last)  # no division: float32 extremes would overflow


def _end_layers(layer_table: pd.DataFrame) -> tuple[int | None, int | None]:
    """First and last layer in forward order that is not a normalisation layer."""
    if not len(layer_table):
        return None, None
    weights = layer_table[layer_table["kind"] != NORM_KIND].sort_values("layer")["layer"]
    if not len(weights):
        return None, None
    return int(weights.iloc[0]), int(weights.iloc[-1])


def _first_and_last_step(layers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of the first and the last probed step, indexed by layer (empty if none)."""
    if not len(layers) or "step" not in layers.columns:
        empty = pd.DataFrame(index=pd.Index([], name="layer"))
        return empty, empty
    steps = layers["step"].to_numpy()
    first, last = (
        layers[steps == s].drop_duplicates("layer", keep="last").set_index("layer")
        for s in (steps.min(), steps.max())
    )
    return first, last


def _value(at_step: pd.DataFrame, layer: int | None, metric: str) -> float:
    """One layer's metric as a float; NaN when the layer, the step or the metric is missing."""
    if layer is None or metric not in at_step.columns or layer not in at_step.index:
        return math.nan
    return float(at_step.at[layer, metric])


def _nanmin(at_step: pd.DataFrame, metric: str) -> float:
    """Smallest recorded value over layers; NaN (without a warning) when none was recorded."""
    if metric not in at_step.columns:
        return math.nan
    values = at_step[metric].to_numpy(dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.min()) if values.size else math.nan


def _steps_to_half_loss(steps: pd.DataFrame | None) -> float:
    """First probed step whose loss is at most half the first loss; NaN if never (or unknown)."""
    if steps is None or not len(steps) or "loss" not in steps.columns:
        return math.nan
    ordered = steps.sort_values("step")
    loss = ordered["loss"].to_numpy(dtype=np.float64)
    if not math.isfinite(loss[0]):
        return math.nan
    reached = np.flatnonzero(loss <= loss[0] / 2)
    return float(ordered["step"].iloc[reached[0]]) if reached.size else math.nan
