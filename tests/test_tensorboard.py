"""logger=tensorboard and export_tensorboard: TensorBoard's own reader sees the Parquet values."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest_report import write_run
from vgx.errors import ConfigError
from vgx.histograms import N_FINITE, NAN, ZERO, bin_edges
from vgx.store import MetricsWriter, RunDir
from vgx.tensorboard import TensorBoardSink, export_tensorboard
from vgx.train import execute

LAYER_METRICS = ("grad_norm", "act_grad_norm", "weight_norm", "update_ratio", "act_std")


def events(run: RunDir) -> EventAccumulator:
    reader = EventAccumulator(
        str(run.path / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0}
    )
    return reader.Reload()


def scalars(reader: EventAccumulator, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in reader.Scalars(tag)}


def assert_scalars_equal_parquet(run: RunDir, reader: EventAccumulator) -> None:
    """Every per-layer, per-step and eval value equals its Parquet value as float32."""
    names = pd.read_csv(run.layers_file).set_index("layer")["name"]
    layers = run.read_table("layers")
    for metric in LAYER_METRICS:
        for layer, rows in layers.dropna(subset=[metric]).groupby("layer"):
            expected = dict(zip(rows["step"], rows[metric].astype(np.float32), strict=True))
            assert scalars(reader, f"{metric}/{names[layer]}") == expected, (metric, layer)
    for table, prefix, columns in (("steps", "", ("loss",)), ("evals", "eval/", ("accuracy",))):
        frame = run.read_table(table)
        for column in columns:
            expected = dict(zip(frame["step"], frame[column].astype(np.float32), strict=True))
            assert scalars(reader, prefix + column) == expected


@pytest.fixture
def live_run(make_cfg, tmp_path: Path) -> RunDir:
    cfg = make_cfg("steps=4", "depth=3", "width=8", "threads=1", "logger=tensorboard")
    assert execute(cfg, tmp_path / "run")[0] == "done"
    return RunDir(tmp_path / "run")


def test_a_live_run_writes_scalars_equal_to_its_parquet_values(live_run):
    assert_scalars_equal_parquet(live_run, events(live_run))


def test_a_live_run_tags_layers_by_module_name(live_run):
    tags = events(live_run).Tags()["scalars"]
    names = pd.read_csv(live_run.layers_file)["name"]
    assert {f"grad_norm/{n}" for n in names} <= set(tags)
    assert {"loss", "grad_total_norm", "eval/loss", "eval/accuracy"} <= set(tags)


def test_a_live_run_with_histograms_writes_each_one_over_its_finite_nonzero_values(
    make_cfg, tmp_path
):
    cfg = make_cfg("steps=3", "depth=2", "width=4", "threads=1", "logger=tensorboard")
    cfg.probe.hist_every = 2
    run = RunDir(tmp_path / "run")
    assert execute(cfg, run.path)[0] == "done"
    hist = run.read_table("hist")
    finite = hist[(hist["bin"] >= 1) & (hist["bin"] <= N_FINITE)]
    names = pd.read_csv(run.layers_file).set_index("layer")["name"]
    reader = events(run)
    for (step, layer, quantity), rows in finite.groupby(["step", "layer", "quantity"]):
        tag = f"hist/{quantity}/{names[layer]}"
        [event] = [e for e in reader.Histograms(tag) if e.step == step]
        assert event.histogram_value.num == rows["count"].sum()


def test_rows_sent_before_the_layer_table_are_tagged_by_name_once_it_comes(tmp_path):
    sink = TensorBoardSink(tmp_path)
    sink.append("layers", {"step": [0], "layer": [0], "grad_norm": [1.0]})
    sink.describe_layers(pd.DataFrame({"layer": [0], "name": ["blocks.0.linear"]}))
    sink.append("layers", {"step": [1], "layer": [0], "grad_norm": [2.0]})
    sink.close()
    assert scalars(events(RunDir(tmp_path)), "grad_norm/blocks.0.linear") == {0: 1.0, 1: 2.0}


def test_nan_values_are_left_out(tmp_path):
    sink = TensorBoardSink(tmp_path)
    nan = np.float32("nan")
    sink.append("layers", {"step": [0, 1], "layer": [0, 0], "grad_norm": [1.5, nan]})
    sink.close()
    assert scalars(events(RunDir(tmp_path)), "grad_norm/0") == {0: 1.5}


def test_without_tensorboard_the_logger_is_a_config_error_saying_how_to_install(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"pip install 'vgx\[tensorboard\]'"):
        TensorBoardSink(tmp_path)


def test_without_tensorboard_a_run_is_invalid_with_that_message(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    cfg = make_cfg("steps=1", "depth=2", "width=4", "threads=1", "logger=tensorboard")
    assert execute(cfg, tmp_path / "run")[0] == "invalid"
    assert "vgx[tensorboard]" in RunDir(tmp_path / "run").read_status()["message"]


def hist_columns() -> dict[str, np.ndarray]:
    """Two layers' weight-gradient histograms at one step, with zeros and NaN beside them."""
    return {
        "step": np.array([3, 3, 3, 3, 3], np.int64),
        "layer": np.array([0, 0, 0, 0, 1], np.int32),
        "quantity": np.array(["grad"] * 5),
        "bin": np.array([ZERO, 40, 43, NAN, N_FINITE], np.int16),
        "count": np.array([7, 5, 2, 1, 9], np.int64),
    }


def test_histograms_hold_the_finite_bins_densely_over_log10_edges(tmp_path):
    sink = TensorBoardSink(tmp_path)
    sink.append("hist", hist_columns())
    sink.close()
    [event] = events(RunDir(tmp_path)).Histograms("hist/grad/0")
    histogram = event.histogram_value
    assert event.step == 3
    assert histogram.bucket == [5, 0, 0, 2]  # bins 40 … 43; zeros and NaN are not drawn
    np.testing.assert_allclose(histogram.bucket_limit, bin_edges(np.arange(40, 44))[1])
    assert histogram.min == bin_edges(np.array([40]))[0][0]
    assert histogram.num == 7


def test_export_writes_events_for_finished_runs_equal_to_their_parquet(tmp_path):
    done = write_run(tmp_path, "act=relu", act="relu")
    write_run(tmp_path, "act=tanh", act="tanh", status="running", summary=False)
    written = export_tensorboard(tmp_path)
    assert [p.parent.parent for p in written] == [done.path]
    assert_scalars_equal_parquet(done, events(done))


def test_export_replaces_earlier_events_instead_of_adding_to_them(tmp_path):
    run = write_run(tmp_path, "act=relu", act="relu")
    export_tensorboard(tmp_path)
    [written] = export_tensorboard(tmp_path)
    assert list((run.path / "tensorboard").iterdir()) == [written]
    assert len(events(run).Scalars("loss")) == 6  # each step once


def test_a_run_redone_from_step_0_drops_the_events_of_its_earlier_attempt(tmp_path):
    run = write_run(tmp_path, "act=relu", act="relu")
    export_tensorboard(tmp_path)
    run.clear_results()
    assert list(run.tensorboard_dir.iterdir()) == []


def test_export_of_a_run_with_histograms_writes_them(tmp_path):
    run = write_run(tmp_path, "act=relu", act="relu")
    with MetricsWriter(run.metrics_dir) as writer:
        writer.append("hist", hist_columns())
    export_tensorboard(tmp_path)
    tags = events(run).Tags()["histograms"]
    assert sorted(tags) == ["hist/grad/blocks.0.linear", "hist/grad/blocks.1.linear"]


def test_export_returns_nothing_for_a_sweep_without_finished_runs(tmp_path):
    write_run(tmp_path, "act=relu", status="running", summary=False)
    assert export_tensorboard(tmp_path) == []
