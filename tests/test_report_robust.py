"""build_report on a sweep with every kind of unfinished or broken run: it reports them all."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest_report import tree_digest, write_run
from vgx.report import Report, build_report
from vgx.report import parallel as report_parallel
from vgx.runs import read_run_metrics
from vgx.status import RUNNING
from vgx.store import RunDir, chunk_files
from vgx.summary import SUMMARY_KEYS, gradient_summary

EXPECTED_STATUS = {
    "done": "done",
    "running": "running",
    "failed": "failed",
    "diverged": "diverged",
    "invalid": "invalid",
    "interrupted": "interrupted",
    "empty": "running",
    "corrupt-parquet": "corrupt",
    "corrupt-status": "corrupt",
    "corrupt-summary": "corrupt",
}


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("messy")
    write_run(root, "done")
    half = write_run(root, "running", status=RUNNING, summary=False)
    chunk_files(half.metrics_dir, "layers")[-1].unlink()  # the chunk being filled: not written yet
    failure = {"message": "RuntimeError: boom"}
    write_run(root, "failed", status="failed", summary=False, status_fields=failure)
    divergence = {"step": 3, "layer": "blocks.2.linear", "message": "non-finite"}
    write_run(root, "diverged", status="diverged", status_fields=divergence)
    RunDir(root / "invalid").write_status("invalid", message="act=foo is not a valid choice")
    write_run(root, "interrupted", status="interrupted", summary=False)
    RunDir(root / "empty").write_status(RUNNING)
    broken = write_run(root, "corrupt-parquet")
    chunk_files(broken.metrics_dir, "layers")[0].write_bytes(b"PAR1 not really parquet")
    write_run(root, "corrupt-status").status_file.write_text('{"status": "do')
    write_run(root, "corrupt-summary").summary_file.write_text("[1, 2")
    return root


@pytest.fixture(scope="module")
def printed(messy: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, str, str]:
    before = tree_digest(messy)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = build_report(messy, tmp_path_factory.mktemp("out"))
    return report, out.getvalue(), before


def rows(report: Report) -> pd.DataFrame:
    return report.summary.set_index("run")


def test_every_run_appears_in_the_summary_with_its_status(printed):
    report, _, _ = printed
    assert rows(report)["status"].to_dict() == EXPECTED_STATUS


def test_a_warning_line_is_printed_for_every_run_that_is_not_done(printed):
    _, text, _ = printed
    warned = {line.split(":")[1].strip() for line in text.splitlines() if line.startswith("warn")}
    assert warned == set(EXPECTED_STATUS) - {"done"}


def test_every_plot_is_still_written(printed):
    report, _, _ = printed
    assert sum(p.suffix == ".png" for p in report.paths) == 9


def test_a_half_written_run_gets_its_gradient_summary_from_the_chunks_it_has(printed, messy):
    report, _, _ = printed
    run = RunDir(messy / "running")
    expected = gradient_summary(
        run.read_table("layers"), pd.read_csv(run.layers_file), run.read_table("steps")
    )
    row = rows(report).loc["running"]
    assert {k: row[k] for k in SUMMARY_KEYS} == pytest.approx(expected, nan_ok=True)
    assert pd.isna(row["wall_time_s"])


def test_a_run_with_an_unreadable_parquet_file_names_it_and_its_recorded_status(printed):
    report, _, _ = printed
    message = rows(report).at["corrupt-parquet", "message"]
    assert "unreadable layers metrics" in message and "recorded status: done" in message


def test_a_run_with_an_unreadable_status_file_still_has_its_config_and_metrics(printed):
    report, _, _ = printed
    row = rows(report).loc["corrupt-status"]
    assert "status.json" in row["message"]
    assert row["model"] == "mlp" and not pd.isna(row["decades_lost_grad_end"])


def test_a_run_with_an_unreadable_summary_names_the_file(printed):
    report, _, _ = printed
    assert "summary.json" in rows(report).at["corrupt-summary", "message"]


def test_a_diverged_run_reports_where_it_diverged(printed):
    report, _, _ = printed
    row = rows(report).loc["diverged"]
    assert (row["diverged_step"], row["diverged_layer"]) == (3, "blocks.2.linear")


def test_a_failed_run_keeps_its_message(printed):
    report, _, _ = printed
    assert rows(report).at["failed", "message"] == "RuntimeError: boom"


def test_runs_without_metrics_have_nan_metrics(printed):
    report, _, _ = printed
    for name in ("empty", "invalid"):
        assert rows(report).loc[name, list(SUMMARY_KEYS)].isna().all()


def test_the_reporter_writes_nothing_inside_the_sweep_when_reporting_elsewhere(printed, messy):
    _, _, before = printed
    assert tree_digest(messy) == before


def test_worker_processes_give_the_same_tables(printed, messy, tmp_path, monkeypatch):
    sequential, _, _ = printed
    monkeypatch.setattr(report_parallel, "PARALLEL_MIN_RUNS", 1)
    pooled = build_report(messy, tmp_path, echo=False)
    pd.testing.assert_frame_equal(pooled.summary, sequential.summary)
    pd.testing.assert_frame_equal(pooled.layers, sequential.layers)


def test_time_table_of_a_version_1_run_reads_as_the_direct_output_gradient(tmp_path):
    # version 1 stored the gradient reaching a fused layer's output under hidden_grad_norm
    run = write_run(tmp_path, "old", model="rnn", recurrent=True)
    record = json.loads(run.status_file.read_text())
    del record["schema_version"]
    run.status_file.write_text(json.dumps(record))
    time = read_run_metrics(run.path).time  # the first and the last step, 5 time steps each
    assert time["hidden_grad_norm"].isna().all()
    expected = np.tile(10.0 ** (np.arange(5) - 4.0), 2)
    assert time["output_grad_norm"].to_numpy() == pytest.approx(expected, rel=1e-6, abs=0)


def test_time_table_of_a_current_run_keeps_hidden_grad_norm(tmp_path):
    run = write_run(tmp_path, "new", model="rnn", recurrent=True)
    time = read_run_metrics(run.path).time
    expected = np.tile(10.0 ** (np.arange(5) - 4.0), 2)
    assert time["hidden_grad_norm"].to_numpy() == pytest.approx(expected, rel=1e-6, abs=0)


def test_conclusions_list_a_run_with_an_unreadable_config_as_not_diagnosed(tmp_path):
    write_run(tmp_path / "sweep", "broken").config.write_text("act: [unclosed")
    write_run(tmp_path / "sweep", "fine")
    report = build_report(tmp_path / "sweep", tmp_path / "out", echo=False)
    assert list(report.summary["status"]) == ["corrupt", "done"]  # still listed in the tables
    assert [run.status for run in report.conclusions.runs] == ["done"]
    assert report.conclusions.notes[0].startswith("not diagnosed: broken: unreadable config.yaml")
