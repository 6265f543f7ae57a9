"""Theory next to measurement: summary columns and the dashed prediction on the plots."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tests.conftest_report import write_run
from vgx.report import build_report
from vgx.report.theory_overlay import NOTE, predicted_lines
from vgx.theory import predicted_profile, theory_summary

matplotlib.use("Agg")


def test_summary_has_the_mean_field_prediction_of_each_mlp_run(tmp_path):
    write_run(tmp_path, "a", act="tanh", depth=4)
    write_run(tmp_path, "b", act="relu", depth=4)
    summary = build_report(tmp_path, echo=False).summary.set_index("act")
    for act in ("tanh", "relu"):
        expected = theory_summary({**summary.loc[act].to_dict(), "act": act})
        assert summary.loc[act, "chi1"] == expected["chi1"]
        assert summary.loc[act, "predicted_slope"] == expected["predicted_slope"]


def test_theory_columns_are_nan_where_the_theory_does_not_apply(tmp_path):
    write_run(tmp_path, "a", norm="batch")
    summary = build_report(tmp_path, echo=False).summary
    assert math.isnan(summary.loc[0, "chi1"])


def test_overlay_draws_one_dashed_line_per_run_anchored_at_the_output_layer():
    summary = pd.DataFrame(
        [
            {
                "run": "r",
                "model": "mlp",
                "act": "tanh",
                "init": "default",
                "depth": 3,
                "width": 64,
                "norm": "none",
                "skip": "none",
                "data": "digits",
            }
        ]
    )
    rows = pd.DataFrame({"run": "r", "layer": range(4), "act_grad_norm_init": [1e-3, 1e-2, 0.1, 1]})
    ax = Figure().add_subplot()
    predicted_lines(summary, "act_grad_norm_init", ax, rows)
    (line,) = ax.get_lines()
    assert line.get_linestyle() == "--"
    assert line.get_ydata()[-1] == 1.0  # anchored at the measured output layer
    assert any(text.get_text() == NOTE for text in ax.texts)


def test_overlay_skips_runs_the_theory_does_not_cover():
    summary = pd.DataFrame([{"run": "r", "model": "cnn", "act": "relu", "depth": 2}])
    rows = pd.DataFrame({"run": "r", "layer": range(3), "act_grad_norm_init": [0.1, 0.5, 1.0]})
    ax = Figure().add_subplot()
    predicted_lines(summary, "act_grad_norm_init", ax, rows)
    assert not ax.get_lines() and not ax.texts


def test_overlay_draws_a_residual_runs_per_block_prediction_at_every_linear_layer():
    config = {"run": "r", "model": "mlp", "act": "relu", "init": "he_normal", "depth": 3}
    config |= {"width": 64, "norm": "none", "skip": "residual", "data": "digits"}
    summary = pd.DataFrame([config])
    layers = 1 + 2 * 2 + 1  # stem, two blocks of two, head
    rows = pd.DataFrame({"run": "r", "layer": range(layers), "act_grad_norm_init": [1.0] * layers})
    ax = Figure().add_subplot()
    predicted_lines(summary, "act_grad_norm_init", ax, rows)
    (line,) = ax.get_lines()
    predicted = np.log10(line.get_ydata())
    assert predicted.tolist() == pytest.approx(predicted_profile(config).tolist(), abs=1e-12)
    assert predicted[0] > 0.2  # He-init ReLU blocks grow the gradient toward the input
