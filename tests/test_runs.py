"""vgx.load_sweep: the one run reader, its frames, and runs written by older versions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import vgx
from tests.conftest_report import write_run
from vgx.report import build_report
from vgx.runs import HEADLINE_COLUMNS, load_sweep
from vgx.store import RunDir


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sweep")
    for act in ("relu", "tanh"):
        for depth in (3, 5):
            write_run(root, f"act={act},depth={depth}", act=act, depth=depth)
    return root


def test_load_sweep_is_a_function_of_the_package_returning_data_frames(sweep):
    loaded = vgx.load_sweep(sweep)
    for frame in (loaded.summary, loaded.layers, loaded.steps, loaded.evals):
        assert isinstance(frame, pd.DataFrame) and len(frame)
    assert len(loaded.summary) == 4
    assert len(loaded.layers) == 2 * (3 + 5)
    assert set(loaded.steps["run"]) == set(loaded.summary["run"])


def test_the_report_writes_the_frames_load_sweep_returns(sweep, tmp_path):
    build_report(sweep, tmp_path / "report", echo=False)
    loaded = load_sweep(sweep)
    written = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert list(written.columns) == list(loaded.summary.columns)
    pd.testing.assert_series_equal(
        written["decades_lost_act_init"], loaded.summary["decades_lost_act_init"]
    )
    assert len(pd.read_csv(tmp_path / "report" / "layers.csv")) == len(loaded.layers)


def test_summary_starts_with_ids_then_the_varying_keys_then_the_headline_results(sweep):
    columns = list(load_sweep(sweep).summary.columns)
    assert columns[:4] == ["run", "status", "act", "depth"]
    assert columns[4 : 4 + len(HEADLINE_COLUMNS)] == list(HEADLINE_COLUMNS)


def test_decades_lost_is_how_many_decades_the_input_layer_is_below_the_output_layer(sweep):
    loaded = load_sweep(sweep)
    for run, row in loaded.summary.set_index("run").iterrows():
        raw = RunDir(sweep / run).read_table("layers")
        first = raw[raw["step"] == 0].sort_values("layer")["act_grad_norm"].to_numpy(np.float64)
        expected = np.log10(first[-1]) - np.log10(first[0])
        assert row["decades_lost_act_init"] == pytest.approx(expected, rel=1e-6, abs=0)


def test_a_run_written_before_schema_versions_reads_its_zero_fraction_under_the_new_name(tmp_path):
    write_run(tmp_path, "old", version=1)
    write_run(tmp_path, "new")
    loaded = load_sweep(tmp_path)
    assert set(loaded.summary["status"]) == {"done"}
    by_run = loaded.layers.set_index(["run", "layer"])
    np.testing.assert_allclose(
        by_run.loc["old", "zero_fraction_final"], by_run.loc["new", "zero_fraction_final"]
    )
    assert by_run.loc["old", "dead_units_final"].isna().all()
    assert by_run.loc["new", "dead_units_final"].notna().all()


def test_dataset_sizes_and_classes_come_from_what_the_run_recorded(tmp_path):
    run = write_run(tmp_path, "a")
    run.write_summary({**run.read_summary(), "n_train": 1438, "n_test": 359, "n_classes": 10})
    row = load_sweep(tmp_path).summary.iloc[0]
    assert (row["n_train"], row["n_test"], row["n_classes"]) == (1438, 359, 10)


def test_a_run_stuck_at_chance_is_flagged_as_not_trained(tmp_path):
    for name, accuracy in (("learned", 0.9), ("stuck", 0.09)):
        run = write_run(tmp_path, name)
        run.write_summary({**run.read_summary(), "n_classes": 10})
        evals = run.metrics_dir / "evals-00000.parquet"
        frame = pd.read_parquet(evals).assign(accuracy=accuracy)
        frame.to_parquet(evals)
    trained = load_sweep(tmp_path).summary.set_index("run")["trained"]
    assert trained.to_dict() == {"learned": True, "stuck": False}
