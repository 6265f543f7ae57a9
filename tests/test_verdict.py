"""The verdict table at the end of a sweep: trained or not, decades lost, where, slopes."""

from __future__ import annotations

import math

import pandas as pd

from vgx.sweep.verdict import verdict_table


def frames(
    decades_per_layer: float, steps_to_half: float, trained: object = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One run of 5 weight layers (and one norm layer) whose ‖∂L/∂h‖ falls geometrically."""
    depth = 5
    norms = [10.0 ** (decades_per_layer * (depth - 1 - i)) for i in range(depth)]
    layers = pd.DataFrame(
        {
            "run": "a",
            "layer": [0, 1, 2, 3, 4, 5],
            "kind": ["linear", "norm", "linear", "linear", "linear", "linear"],
            "act_grad_norm_init": [norms[0], 123.0, *norms[1:]],
        }
    )
    summary = pd.DataFrame(
        {
            "run": ["a"],
            "status": ["done"],
            "trained": [trained],
            "act": ["sigmoid"],
            "test_accuracy_final": [0.0891],
            "decades_lost_act_init": [-decades_per_layer * (depth - 1)],
            "decades_lost_act_end": [1.0],
            "steps_to_half_loss": [steps_to_half],
            "predicted_slope": [-0.9],
        }
    )
    return summary, layers


def row_of(table: str) -> str:
    return table.splitlines()[2]


def test_verdict_says_no_for_a_run_the_summary_says_did_not_train():
    table = verdict_table(*frames(-1.0, math.nan, trained=False), ["act"])
    assert row_of(table).split()[:3] == ["act=sigmoid", "no", "0.09"]


def test_verdict_says_yes_for_a_trained_run_whose_loss_never_halved():
    assert row_of(verdict_table(*frames(-0.1, math.nan, trained=True), ["act"])).split()[1] == "yes"


def test_verdict_gives_the_step_at_which_a_trained_run_halved_its_loss():
    assert "yes (40)" in row_of(verdict_table(*frames(-0.1, 40.0, trained=True), ["act"]))


def test_verdict_says_unknown_when_the_summary_cannot_tell():
    table = verdict_table(*frames(-0.1, math.nan, trained=None), ["act"])
    assert row_of(table).split()[1] == "?"


def test_verdict_shows_decades_lost_with_the_summary_sign_at_init_and_end():
    assert "+4.0 → +1.0" in row_of(verdict_table(*frames(-1.0, math.nan), ["act"]))


def test_verdict_names_the_layers_more_than_two_decades_below_the_output():
    # 5 weight layers at -4, -3, -2, -1, 0 decades: the first two are more than 2 below
    assert "2/5 layers (0-1) vanish" in row_of(verdict_table(*frames(-1.0, math.nan), ["act"]))


def test_verdict_compares_the_measured_slope_without_norm_layers_with_the_theory():
    assert "-1.00 / -0.90" in row_of(verdict_table(*frames(-1.0, math.nan), ["act"]))


def test_verdict_shows_a_failed_run_by_its_status():
    summary, layers = frames(-1.0, math.nan)
    assert "failed" in row_of(verdict_table(summary.assign(status="failed"), layers, ["act"]))
