"""Theory next to measurement: summary columns and the dashed prediction on the plots."""

from __future__ import annotations

import math

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from tests.conftest_report import write_run
from vgx.report import build_report
from vgx.report.theory_overlay import NOTE, predicted_lines
from vgx.theory import theory_summary

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
