"""Per-run gradient summary: how many decades gradients fall (or grow) from output to input.

Computed from the raw metrics tables so the training loop (at the end of a run) and the reporter
(for any run, finished or not) get the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vgx.schema import NORM_KIND

NEAR_CHANCE = 2.0  # test accuracy below twice chance (0.2 of 10 classes): did not train
LOSS_FALLEN = 0.9  # last training loss above 90% of the first: did not train
TRAINED_MEANING = "test accuracy above twice chance and training loss below 90% of its start"
SUMMARY_KEYS = (
    "decades_lost_grad_init",
    "decades_lost_grad_end",
    "decades_lost_act_init",
    "decades_lost_act_end",
    "decades_lost_time_init",
    "decades_lost_time_end",
    "min_grad_norm_init",
    "min_grad_norm_end",
    "steps_to_half_loss",
)


def gradient_summary(
    layers: pd.DataFrame,
    layer_table: pd.DataFrame,
    steps: pd.DataFrame | None = None,
    time: pd.DataFrame | None = None,
) -> dict[str, float]:
    """One run's gradient numbers for summary tables (the keys of SUMMARY_KEYS).

    `decades_lost_*` is log10(last layer / first layer) at the first and last probed step, for
    the weight gradient (`grad`) and the activation gradient (`act`): 3 means the input layer's
    gradient is 1000× weaker than the output layer's, negative means it grew (exploding). The
    weight ratio alone hides uniform vanishing. `decades_lost_time_*` is
    log10(‖∂L/∂h_T−1‖ / ‖∂L/∂h_0‖) of the first recurrent layer (the `time` table's
    `hidden_grad_norm`), the decades lost through time. An exact 0 is a result (±inf), NaN "not
    recorded".
    """
    first, last = _end_layers(layer_table)
    step, layer = _column(layers, "step"), _column(layers, "layer")
    result: dict[str, float] = {}
    for stage, at in (("init", step.min(initial=np.inf)), ("end", step.max(initial=-np.inf))):
        here = step == at
        for key, metric in (("grad", "grad_norm"), ("act", "act_grad_norm")):
            values = _column(layers, metric)
            result[f"decades_lost_{key}_{stage}"] = log10_ratio(
                _pick(values, here & (layer == last)), _pick(values, here & (layer == first))
            )
        result[f"min_grad_norm_{stage}"] = _nanmin(_column(layers, "grad_norm")[here])
    result.update(time_ratios(time))
    result["steps_to_half_loss"] = _steps_to_half_loss(steps)
    return {key: result[key] for key in SUMMARY_KEYS}


def log10_ratio(top: float, bottom: float) -> float:
    """log10(top / bottom) where an underflowed 0 is a result (±inf) and NaN means missing."""
    if math.isnan(top) or math.isnan(bottom):
        return math.nan
    if bottom == 0:  # first: when both underflowed, the gradient vanished
        return math.inf
    if top == 0:
        return -math.inf
    if math.isinf(top) and math.isinf(bottom):
        return math.nan
    return math.log10(top) - math.log10(bottom)  # no division: float32 extremes would overflow


def trained(
    test_accuracy: float, n_classes: float, loss_first: float, loss_last: float
) -> bool | None:
    """Whether a run learned: False when its test accuracy stayed near chance (below NEAR_CHANCE
    × 1/n_classes) or its training loss did not fall (last above LOSS_FALLEN × first); None when
    neither can be told (no losses and no classes)."""
    near_chance = (
        test_accuracy < NEAR_CHANCE / n_classes
        if n_classes > 1 and not math.isnan(test_accuracy)
        else None
    )
    stuck = loss_last > LOSS_FALLEN * loss_first if math.isfinite(loss_first) else None
    if near_chance is None and stuck is None:
        return None
    return not (near_chance or stuck or math.isnan(loss_last))


def time_ratios(time: pd.DataFrame | None) -> dict[str, float]:
    """decades_lost_time_{init,end}: log10 of the last over the first time step's ‖∂L/∂h_t‖ of
    the first recurrent layer."""
    ratios = dict.fromkeys(("decades_lost_time_init", "decades_lost_time_end"), math.nan)
    if time is None or not len(time) or "hidden_grad_norm" not in time.columns:
        return ratios
    first = time[time["layer"] == time["layer"].min()]
    step = _column(first, "step")
    for stage, at in (("init", step.min()), ("end", step.max())):
        series = first[step == at].sort_values("t")["hidden_grad_norm"].to_numpy(np.float64)
        ratios[f"decades_lost_time_{stage}"] = log10_ratio(series[-1], series[0])
    return ratios


def _end_layers(layer_table: pd.DataFrame) -> tuple[float, float]:
    """First and last layer in forward order that is not a normalisation layer (NaN: none)."""
    if not len(layer_table):
        return math.nan, math.nan
    weights = layer_table.loc[layer_table["kind"] != NORM_KIND, "layer"].to_numpy(np.float64)
    return (weights.min(), weights.max()) if weights.size else (math.nan, math.nan)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as float64 (all NaN when the table lacks it)."""
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=np.float64)


def _pick(values: np.ndarray, rows: np.ndarray) -> float:
    """The value of the (last) selected row; NaN when no row is selected."""
    index = np.flatnonzero(rows)
    return float(values[index[-1]]) if index.size else math.nan


def _nanmin(values: np.ndarray) -> float:
    """Smallest recorded value; NaN (without a warning) when none was recorded."""
    values = values[~np.isnan(values)]
    return float(values.min()) if values.size else math.nan


def _steps_to_half_loss(steps: pd.DataFrame | None) -> float:
    """First probed step whose loss is at most half the first loss; NaN if never (or unknown)."""
    if steps is None or not len(steps) or "loss" not in steps.columns:
        return math.nan
    step = _column(steps, "step")
    order = np.argsort(step, kind="stable")
    loss = _column(steps, "loss")[order]
    if not math.isfinite(loss[0]):
        return math.nan
    reached = np.flatnonzero(loss <= loss[0] / 2)
    return float(step[order][reached[0]]) if reached.size else math.nan
