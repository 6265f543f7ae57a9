"""Runs written before schema version 2 (float32 magnitudes, no schema_version) stay readable."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest_report import write_run
from vgx.diagnosis import main_text
from vgx.report import build_report, compare
from vgx.schema import SCHEMA_VERSION, upgrade, version_of
from vgx.status import DONE
from vgx.store import RunDir, read_metrics
from vgx.tensorboard import export_tensorboard
from vgx.train import execute


def as_version_1(run: RunDir) -> RunDir:
    """What vgx wrote before versions were recorded: float32 columns, `dead`, no schema_version."""
    record = json.loads(run.status_file.read_text())
    record.pop("schema_version", None)
    run.status_file.write_text(json.dumps(record))
    raw = read_metrics(run.metrics_dir, "layers")
    assert raw["grad_norm"].dtype == np.float32  # written as version 1 wrote it
    assert "dead" in raw.columns and "zero_fraction" not in raw.columns
    return run


def test_runs_record_the_current_schema_version(tmp_path) -> None:
    run = write_run(tmp_path, "new")
    assert SCHEMA_VERSION == 2 and version_of(run.read_status()) == 2


def test_a_version_1_run_reads_as_float64_with_its_float32_values_kept(tmp_path) -> None:
    run = as_version_1(write_run(tmp_path, "old", recurrent=True, version=1))
    assert version_of(run.read_status()) == 1
    # version 1's `hidden_grad_norm` held the direct output gradient: it reads as output_grad_norm
    columns = (
        ("layers", "grad_norm", "grad_norm"),
        ("layers", "act_mean", "act_mean"),
        ("layers", "dead", "zero_fraction"),
        ("time", "hidden_grad_norm", "output_grad_norm"),
    )
    for table, column, current in columns:
        stored = read_metrics(run.metrics_dir, table)[column]
        read = run.read_table(table)[current]
        assert read.dtype == np.float64, table
        np.testing.assert_array_equal(read.to_numpy(), stored.to_numpy().astype(np.float64))


def test_upgrade_leaves_frames_of_the_current_version_as_they_are() -> None:
    frame = pd.DataFrame({"grad_norm": np.array([1.5], np.float32)})
    assert upgrade("layers", frame, SCHEMA_VERSION)["grad_norm"].dtype == np.float32


@pytest.fixture
def mixed_sweep(make_cfg, tmp_path):
    """A version-1 run beside a float64 version-2 run whose gradients are below float32's range."""
    sweep = tmp_path / "sweep"
    old = as_version_1(write_run(sweep, "act=relu", act="relu", depth=4, version=1))
    cfg = make_cfg(
        "dtype=float64", "depth=60", "act=sigmoid", "init=default", "steps=1", "threads=1"
    )
    assert execute(cfg, sweep / "act=sigmoid") == (DONE, DONE)
    return sweep, old


def test_the_report_of_version_1_and_version_2_runs_holds_both_as_stored(mixed_sweep) -> None:
    sweep, old = mixed_sweep
    summary = build_report(sweep, echo=False).summary.set_index("run")
    layers = read_metrics(old.metrics_dir, "layers")
    first_old = layers.loc[layers["step"] == 0, "grad_norm"].min()
    assert summary.loc["act=relu", "min_grad_norm_init"] == float(first_old)
    new = RunDir(sweep / "act=sigmoid").read_table("layers")
    assert 0 < summary.loc["act=sigmoid", "min_grad_norm_init"] == new["grad_norm"].min() < 1e-45


def test_compare_diagnose_and_export_read_a_version_1_run(mixed_sweep, tmp_path) -> None:
    sweep, old = mixed_sweep
    other = tmp_path / "other"
    as_version_1(write_run(other, "act=tanh", act="tanh", depth=4, version=1))
    assert len(compare([sweep, other], tmp_path / "compare", echo=False).summary) == 3
    assert "act=relu" in main_text(sweep)
    assert old.path in [p.parent.parent for p in export_tensorboard(sweep)]
