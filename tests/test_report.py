"""build_report: the tables it writes, which runs it finds, and what it never touches."""

from __future__ import annotations

import contextlib
import io
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest_report import tree_digest, write_run
from vgx.errors import VgxError
from vgx.report import Report, build_report
from vgx.runs import summary_frame, varying_keys
from vgx.store import RunDir
from vgx.summary import SUMMARY_KEYS, gradient_summary

PLOTS = {
    "grad_vs_layer_init.png",
    "grad_vs_layer_final.png",
    "act_grad_vs_layer_init.png",
    "act_grad_vs_layer_final.png",
    "update_ratio_vs_layer.png",
    "loss.png",
    "test_loss.png",
    "accuracy.png",
    "heatmap_grad_norm.png",
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    for act in ("sigmoid", "relu"):
        for depth in (2, 10):
            write_run(root, f"act={act},depth={depth}", act=act, depth=depth)
    return root


@pytest.fixture(scope="module")
def printed(sweep: Path) -> tuple[Report, str, str]:
    """The report, what it printed, and the digest of the run directories before it ran."""
    before = tree_digest(sweep, skip=sweep / "report")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = build_report(sweep)
    return report, out.getvalue(), before


@pytest.fixture(scope="module")
def report(printed: tuple[Report, str, str]) -> Report:
    return printed[0]


def equal_or_both_nan(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6)


def test_summary_has_a_row_per_run_named_by_its_path_below_the_sweep(report):
    assert sorted(report.summary["run"]) == sorted(
        f"act={a},depth={d}" for a in ("sigmoid", "relu") for d in (2, 10)
    )


def test_summary_has_status_and_every_flattened_config_key(report):
    columns = set(report.summary.columns)
    assert {"run", "status", "model", "data", "data.seed", "probe.every", "width"} <= columns
    assert set(report.summary["status"]) == {"done"}
    assert set(report.summary["model"]) == {"mlp"}


def test_varying_keys_are_the_config_keys_whose_values_differ(report):
    assert report.varying == ["act", "depth"]  # in config.yaml order


def test_rows_are_sorted_by_the_varying_keys_with_numbers_in_numeric_order(report):
    assert report.summary["act"].tolist() == ["relu", "relu", "sigmoid", "sigmoid"]
    assert report.summary["depth"].tolist() == [2, 10, 2, 10]


def test_gradient_columns_equal_a_recomputation_from_the_parquet_files(report, sweep):
    for _, row in report.summary.iterrows():
        run = RunDir(sweep / row["run"])
        expected = gradient_summary(
            run.read_table("layers"), pd.read_csv(run.layers_file), run.read_table("steps")
        )
        for key in SUMMARY_KEYS:
            assert equal_or_both_nan(row[key], expected[key]), (row["run"], key)


def test_loss_and_accuracy_columns_equal_a_recomputation_from_the_parquet_files(report, sweep):
    for _, row in report.summary.iterrows():
        run = RunDir(sweep / row["run"])
        steps = run.read_table("steps").sort_values("step")
        evals = run.read_table("evals").sort_values("step")
        assert row["train_loss_final"] == steps["loss"].iloc[-1]
        assert row["train_loss_best"] == steps["loss"].min()
        assert row["test_loss_final"] == evals["loss"].iloc[-1]
        assert row["test_accuracy_final"] == evals["accuracy"].iloc[-1]
        assert row["test_accuracy_best"] == evals["accuracy"].max()


def test_wall_time_speed_and_steps_done_come_from_summary_json(report, sweep):
    for _, row in report.summary.iterrows():
        recorded = RunDir(sweep / row["run"]).read_summary()
        assert row["wall_time_s"] == recorded["wall_time_s"]
        assert row["steps_per_s"] == recorded["steps_per_s"]
        assert row["steps_done"] == recorded["steps_done"]


def test_layers_csv_has_a_row_per_run_and_layer_with_only_the_varying_keys(report):
    layers = report.layers
    assert len(layers) == 2 * (2 + 10)
    assert list(layers.columns[:6]) == ["run", "act", "depth", "layer", "name", "kind"]
    assert "width" not in layers.columns
    for stat in ("init", "mean", "final"):
        assert {
            f"grad_norm_{stat}",
            f"act_grad_norm_{stat}",
            f"zero_fraction_{stat}",
            f"dead_units_{stat}",
        } <= set(layers)


def test_layers_csv_mean_and_final_equal_a_recomputation_from_the_parquet_files(report, sweep):
    for run_name, rows in report.layers.groupby("run"):
        raw = RunDir(sweep / run_name).read_table("layers")
        last = raw[raw["step"] == raw["step"].max()].set_index("layer")
        mean = raw.groupby("layer").mean()
        rows = rows.set_index("layer")
        for metric in (
            "grad_norm",
            "act_grad_norm",
            "update_ratio",
            "saturated",
            "zero_fraction",
            "dead_units",
        ):
            np.testing.assert_allclose(rows[f"{metric}_mean"], mean[metric], rtol=1e-6)
            np.testing.assert_allclose(rows[f"{metric}_final"], last[metric], rtol=1e-6)


def test_tables_and_plots_are_written_under_the_report_directory(report, sweep):
    names = {p.name for p in report.paths}
    assert names == {"summary.csv", "layers.csv", "index.html", *PLOTS}
    assert all(p.parent == sweep / "report" and p.stat().st_size > 0 for p in report.paths)


def test_written_summary_csv_reads_back_as_the_returned_frame(report, sweep):
    written = pd.read_csv(sweep / "report" / "summary.csv")
    pd.testing.assert_frame_equal(
        written[["run", "depth", "act", *SUMMARY_KEYS]],
        report.summary[["run", "depth", "act", *SUMMARY_KEYS]],
        check_dtype=False,
    )


def test_the_reporter_does_not_modify_run_directories(printed, sweep):
    _, _, before = printed
    assert tree_digest(sweep, skip=sweep / "report") == before


def test_the_terminal_shows_varying_keys_and_key_metrics_but_not_constant_keys(printed):
    _, text, _ = printed
    header = next(line for line in text.splitlines() if "status" in line and "act" in line)
    assert header.split()[:3] == ["act", "depth", "status"]
    assert "dW_lost" in header and "dh_lost" in header
    assert "width" not in header


def test_the_terminal_says_where_the_files_are(printed):
    report, text, _ = printed
    assert str(report.paths[0].parent) in text
    assert all(p.name in text for p in report.paths)


def test_runs_below_the_report_directory_are_ignored(tmp_path):
    write_run(tmp_path, "act=relu", act="relu")
    shutil.copytree(tmp_path / "act=relu", tmp_path / "report" / "copied")
    report = build_report(tmp_path, echo=False)
    assert report.summary["run"].tolist() == ["act=relu"]


def test_a_missing_sweep_directory_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(VgxError, match=r"no such directory: .*nowhere"):
        build_report(tmp_path / "nowhere", echo=False)


def test_a_file_instead_of_a_directory_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(VgxError, match="not a directory"):
        build_report(tmp_path / "file", echo=False)


def test_a_directory_without_runs_is_a_user_error_naming_it(tmp_path):
    (tmp_path / "some" / "dir").mkdir(parents=True)
    with pytest.raises(VgxError, match=r"^no run directories \(status.json\) below .*some$"):
        build_report(tmp_path / "some", echo=False)


def test_a_report_directory_inside_a_run_directory_is_refused(tmp_path):
    run = write_run(tmp_path, "act=relu")
    with pytest.raises(VgxError, match="inside the run directory"):
        build_report(tmp_path, run.path / "report", echo=False)


def test_constant_keys_are_not_varying():
    frame = pd.DataFrame({"run": ["a", "b"], "status": "done", "act": "relu", "depth": [2, 8]})
    assert varying_keys(frame) == ["depth"]


def test_a_key_present_in_only_some_runs_is_varying():
    frame = pd.DataFrame(
        {"run": ["a", "b", "c"], "status": "done", "norm": ["batch", "batch", np.nan]}
    )
    assert varying_keys(frame) == ["norm"]


def test_a_key_missing_in_some_runs_is_an_empty_cell_in_their_rows():
    rows = [{"run": "a", "status": "done", "norm": "batch"}, {"run": "b", "status": "done"}]
    summary = summary_frame(rows).set_index("run")
    assert summary.at["a", "norm"] == "batch"
    assert pd.isna(summary.at["b", "norm"])


def test_a_sweep_over_seeds_gets_mean_and_spread_per_configuration(tmp_path):
    for act in ("relu", "tanh"):
        for seed in (0, 1, 2):
            write_run(tmp_path, f"{act}-{seed}", act=act, seed=seed)
    report = build_report(tmp_path, echo=False)
    table = pd.read_csv(tmp_path / "report" / "summary_by_config.csv")
    assert table["act"].tolist() == ["relu", "tanh"] and table["runs"].tolist() == [3, 3]
    relu = report.summary[report.summary["act"] == "relu"]["decades_lost_act_init"]
    row = table.set_index("act").loc["relu"]
    assert row["decades_lost_act_init_mean"] == pytest.approx(relu.mean(), rel=1e-12, abs=0)
    assert row["decades_lost_act_init_std"] == pytest.approx(relu.std(), rel=1e-12, abs=0)


def test_a_sweep_without_seeds_gets_no_per_configuration_table(report):
    assert "summary_by_config.csv" not in {p.name for p in report.paths}
