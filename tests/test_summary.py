"""gradient_summary: the per-run gradient numbers of the summary tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vgx.summary import SUMMARY_KEYS, gradient_summary, trained

NAN = float("nan")


def layer_table(kinds: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": range(len(kinds)),
            "name": [f"blocks.{i}" for i in range(len(kinds))],
            "kind": kinds,
        }
    )


def layers_table(grad: dict[int, list[float]], act: dict[int, list[float]] | None = None):
    """Long `layers` rows: step -> one grad_norm (and act_grad_norm) per layer, float32."""
    rows = []
    for step, values in grad.items():
        acts = act[step] if act else [NAN] * len(values)
        for layer, (g, a) in enumerate(zip(values, acts, strict=True)):
            rows.append({"step": step, "layer": layer, "grad_norm": g, "act_grad_norm": a})
    frame = pd.DataFrame(rows)
    return frame.astype({"layer": "int32", "grad_norm": "float32", "act_grad_norm": "float32"})


def steps_table(losses: list[float], every: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"step": np.arange(len(losses)) * every, "loss": losses})


def test_returns_exactly_the_contract_keys():
    summary = gradient_summary(layers_table({0: [1.0, 1.0]}), layer_table(["linear"] * 2))
    assert list(summary) == list(SUMMARY_KEYS)
    assert all(isinstance(value, float) for value in summary.values())


def test_decades_lost_is_log10_last_over_first_layer_at_first_and_last_probed_step():
    layers = layers_table({0: [1e-3, 0.5, 1.0], 10: [1.0, 1.0, 1.0], 20: [1.0, 1.0, 10.0]})
    summary = gradient_summary(layers, layer_table(["linear"] * 3))
    assert summary["decades_lost_grad_init"] == pytest.approx(3.0, abs=1e-6)
    assert summary["decades_lost_grad_end"] == pytest.approx(1.0, abs=1e-6)


def test_activation_ratio_reveals_uniform_vanishing_that_the_weight_ratio_hides():
    weights = [1e-20, 1e-20, 1e-20]
    acts = [1e-19, 1e-10, 1.0]
    summary = gradient_summary(
        layers_table({0: weights}, act={0: acts}), layer_table(["linear"] * 3)
    )
    assert summary["decades_lost_grad_init"] == pytest.approx(0.0, abs=1e-6)
    assert summary["decades_lost_act_init"] == pytest.approx(19.0, abs=1e-5)


def test_norm_layers_are_not_first_or_last_layer():
    layers = layers_table({0: [5.0, 1e-2, 1.0, 100.0]})
    summary = gradient_summary(layers, layer_table(["norm", "linear", "linear", "norm"]))
    assert summary["decades_lost_grad_init"] == pytest.approx(2.0, abs=1e-6)


def test_layer_order_follows_the_layer_index_not_the_row_order():
    table = layer_table(["linear"] * 3).iloc[::-1]
    summary = gradient_summary(layers_table({0: [1e-2, 1.0, 1.0]}), table)
    assert summary["decades_lost_grad_init"] == pytest.approx(2.0, abs=1e-6)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [(0.0, 1.0, math.inf), (0.0, 0.0, math.inf), (1.0, 0.0, -math.inf)],
    ids=["first-zero", "both-zero", "last-zero"],
)
def test_underflow_to_zero_gives_an_infinite_ratio_without_warning(first, last, expected):
    summary = gradient_summary(layers_table({0: [first, last]}), layer_table(["linear"] * 2))
    assert summary["decades_lost_grad_init"] == expected


@pytest.mark.filterwarnings("error")
def test_float32_extremes_do_not_overflow_the_ratio():
    summary = gradient_summary(layers_table({0: [3e38, 1e-38]}), layer_table(["linear"] * 2))
    assert summary["decades_lost_grad_init"] == pytest.approx(-76.477, abs=1e-3)


def test_ratio_is_nan_only_when_the_metric_was_not_recorded():
    summary = gradient_summary(layers_table({0: [1.0, 0.0]}), layer_table(["linear"] * 2))
    assert math.isnan(summary["decades_lost_act_init"])
    assert summary["decades_lost_grad_init"] == -math.inf


def test_ratio_is_nan_when_the_last_layer_has_no_row_at_that_step():
    layers = layers_table({0: [1.0, 1.0], 5: [1.0, 1.0]}).iloc[:-1]
    summary = gradient_summary(layers, layer_table(["linear"] * 2))
    assert math.isnan(summary["decades_lost_grad_end"])
    assert summary["decades_lost_grad_init"] == 0.0


def test_min_grad_norm_is_the_smallest_over_layers_at_first_and_last_step():
    layers = layers_table({0: [3.0, 0.25, 2.0], 7: [0.0, 4.0, 5.0]})
    summary = gradient_summary(layers, layer_table(["linear"] * 3))
    assert summary["min_grad_norm_init"] == 0.25
    assert summary["min_grad_norm_end"] == 0.0


@pytest.mark.filterwarnings("error")
def test_min_grad_norm_is_nan_when_weight_gradients_were_not_recorded():
    summary = gradient_summary(layers_table({0: [NAN, NAN]}), layer_table(["linear"] * 2))
    assert math.isnan(summary["min_grad_norm_init"])


def test_steps_to_half_loss_is_the_first_step_at_or_below_half_the_first_loss():
    steps = steps_table([2.0, 1.5, 1.0, 0.5], every=10)
    summary = gradient_summary(layers_table({0: [1.0]}), layer_table(["linear"]), steps)
    assert summary["steps_to_half_loss"] == 20.0


def test_steps_to_half_loss_is_nan_when_the_loss_never_halves():
    steps = steps_table([2.0, 1.9, NAN, 1.2])
    summary = gradient_summary(layers_table({0: [1.0]}), layer_table(["linear"]), steps)
    assert math.isnan(summary["steps_to_half_loss"])


def test_steps_to_half_loss_is_nan_without_a_steps_table():
    summary = gradient_summary(layers_table({0: [1.0]}), layer_table(["linear"]))
    assert math.isnan(summary["steps_to_half_loss"])


@pytest.mark.filterwarnings("error")
def test_a_run_without_any_metrics_gives_all_nan():
    empty = pd.DataFrame(columns=["step", "layer", "grad_norm", "act_grad_norm"])
    summary = gradient_summary(empty, layer_table([]), pd.DataFrame(columns=["step", "loss"]))
    assert all(math.isnan(value) for value in summary.values())


@pytest.mark.parametrize(
    ("accuracy", "classes", "first", "last", "expected"),
    [
        (0.89, 10, 2.3, 0.4, True),  # learned
        (0.11, 10, 2.3, 2.0, False),  # accuracy near chance (below 2 × 0.1)
        (0.60, 10, 2.3, 2.25, False),  # loss did not fall below 90% of its start
        (math.nan, 0, 0.17, 0.01, True),  # regression: the loss alone tells
        (math.nan, 0, math.nan, math.nan, None),  # nothing recorded: cannot tell
    ],
    ids=["learned", "near-chance", "loss-flat", "regression", "unknown"],
)
def test_trained_is_false_near_chance_or_when_the_loss_does_not_fall(
    accuracy, classes, first, last, expected
):
    assert trained(accuracy, classes, first, last) is expected
