"""compare: several sweeps in one set of tables and plots, aligned on their config keys."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.collections import LineCollection

from tests.conftest_report import write_run
from vgx.errors import VgxError
from vgx.report import Report, compare, sweep_labels
from vgx.report.layout import choose_encoding
from vgx.report.plots import layer_profile
from vgx.runs import varying_keys


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Sweep `plain` varies act; sweep `normed` varies act too and has a `norm` key of its own."""
    root = tmp_path_factory.mktemp("sweeps")
    for act in ("sigmoid", "relu"):
        write_run(root / "plain", f"act={act}", act=act)
        write_run(root / "normed", f"act={act}", act=act, norm="batch")
    return [root / "plain", root / "normed"]


@pytest.fixture(scope="module")
def report(sweeps: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Report:
    return compare(sweeps, tmp_path_factory.mktemp("compare"), echo=False)


def test_summary_has_a_sweep_column_named_after_each_sweep_directory(report):
    assert sorted(report.summary["sweep"].unique()) == ["normed", "plain"]
    assert report.summary.columns[:3].tolist() == ["sweep", "run", "status"]


def test_runs_are_aligned_on_shared_keys_and_a_key_missing_in_a_sweep_is_empty(report):
    by_sweep = report.summary.groupby("sweep")
    assert set(by_sweep.get_group("normed")["norm"]) == {"batch"}
    assert by_sweep.get_group("plain")["norm"].isna().all()
    assert set(report.summary["act"]) == {"sigmoid", "relu"}


def test_varying_keys_are_the_sweep_and_the_shared_keys_that_differ(report):
    assert report.varying == ["sweep", "act"]


def test_a_key_one_sweep_lacks_altogether_is_not_a_varying_key():
    summary = pd.DataFrame(
        {"sweep": ["a", "a", "b"], "run": ["x", "y", "x"], "status": "done",
         "norm": ["batch", "layer", None], "act": ["relu", "relu", "tanh"]}
    )  # fmt: skip
    assert varying_keys(summary) == ["sweep", "act"]


def test_layers_csv_names_the_sweep_of_each_row(report):
    assert report.layers.columns[:2].tolist() == ["sweep", "run"]
    assert len(report.layers) == 4 * 4


def test_compare_writes_its_tables_and_plots_in_the_output_directory(report):
    names = {p.name for p in report.paths}
    assert {"summary.csv", "layers.csv", "grad_vs_layer_final.png"} <= names
    written = pd.read_csv(report.paths[0])
    assert len(written) == 4


def test_sweeps_are_line_styles_so_equal_key_values_share_a_panel(report):
    enc = choose_encoding(report.summary, report.varying, line_style="sweep")
    assert enc.style == "sweep"
    assert enc.color == "act"
    assert "sweep" not in (enc.col, enc.row)


def test_sweeps_with_the_same_directory_name_are_told_apart_by_their_parents():
    labels = sweep_labels([Path("/a/x/sweep"), Path("/b/x/sweep"), Path("/c/other")])
    assert labels == ["a/x/sweep", "b/x/sweep", "c/other"]


def test_the_same_directory_given_twice_gets_numbered_labels():
    assert sweep_labels([Path("/a/s"), Path("/a/s")]) == ["s#1", "s#2"]


def test_a_missing_directory_is_a_user_error_naming_it(sweeps, tmp_path):
    with pytest.raises(VgxError, match=r"no such directory: .*missing"):
        compare([sweeps[0], tmp_path / "missing"], tmp_path / "out", echo=False)


def test_a_directory_without_runs_is_a_user_error_naming_it(sweeps, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VgxError, match=r"^no run directories \(status.json\) below .*empty$"):
        compare([sweeps[0], tmp_path / "empty"], tmp_path / "out", echo=False)


def test_values_from_different_sweeps_share_one_panel_per_depth(tmp_path):
    for sweep, acts in (("one", ("sigmoid", "relu")), ("two", ("tanh", "gelu"))):
        for act in acts:
            for depth in (3, 5):
                write_run(tmp_path / sweep, f"{act}-{depth}", act=act, depth=depth)
    report = compare([tmp_path / "one", tmp_path / "two"], tmp_path / "out", echo=False)
    enc = choose_encoding(report.summary, report.varying, line_style="sweep")
    fig = layer_profile(report.layers, enc, "grad_norm", "init", "", ["sweep", "run"])
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["depth=3", "depth=5"]
    for ax in titled:
        collections = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert {c.get_linestyle()[0][1] is None for c in collections} == {
            True,
            False,
        }  # solid, dashed
        assert len(collections) == 4  # sigmoid, relu (one), tanh, gelu (two)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"sweep=one", "sweep=two", "act=relu", "act=tanh"} <= set(labels)


def test_a_value_has_the_same_colour_in_a_report_and_in_a_compare(report):
    alone = choose_encoding(report.summary[report.summary["sweep"] == "plain"], ["act"])
    together = choose_encoding(report.summary, report.varying, line_style="sweep")
    assert dict(alone.palette)["relu"] == dict(together.palette)["relu"]
