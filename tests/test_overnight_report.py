"""The report never dies: odd sweeps build what they can, list the rest; a kill leaves one whole."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import TINY, run_vgx, start_vgx
from vgx.store import RunDir, chunk_files, find_runs

PNGS = ("loss.png", "accuracy.png", "grad_vs_layer_init.png", "heatmap_grad_norm.png")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny runs with histograms, and their report."""
    root = tmp_path_factory.mktemp("report")
    args = ("sweep", "depth=2,3", *TINY, "probe.hist_every=1", "hydra.sweep.dir=s")
    result = run_vgx(*args, cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "s"


@pytest.fixture
def copy(sweep: Path, tmp_path: Path) -> Path:
    target = tmp_path / "s"
    shutil.copytree(sweep, target)
    return target


def report_of(path: Path) -> tuple[int, str, str]:
    result = run_vgx("report", str(path), cwd=path.parent)
    return result.returncode, result.stdout, result.stderr


def test_report_of_a_sweep_without_any_metrics_lists_what_it_could_not_draw(tmp_path):
    RunDir(tmp_path / "s" / "a").write_status("failed", message="RuntimeError: boom")
    RunDir(tmp_path / "s" / "b").write_status("invalid", message="act=x is not a valid choice")
    code, out, err = report_of(tmp_path / "s")
    assert code == 0 and "Traceback" not in err, err
    assert "not drawn: loss.png" in out
    page = (tmp_path / "s" / "report" / "index.html").read_text()
    assert "not drawn: loss.png" in page and "RuntimeError: boom" in page


def test_report_with_a_duplicated_hist_chunk_draws_the_rest_and_lists_it(copy):
    run = find_runs(copy)[0]
    first = chunk_files(run.metrics_dir, "hist")[0]
    shutil.copy(first, run.metrics_dir / "hist-09999.parquet")
    code, out, err = report_of(copy)
    assert code == 0 and "Traceback" not in err, err
    assert all((copy / "report" / png).exists() for png in PNGS)
    assert "not drawn: hist_grad.png" in out


def test_report_ignores_foreign_files_and_reports_a_foreign_chunk_as_corrupt(copy):
    (copy / "notes.txt").write_text("my notes")
    (copy / "stray.parquet").write_bytes(b"not parquet")
    run = find_runs(copy)[0]
    shutil.copy(chunk_files(run.metrics_dir, "steps")[0], run.metrics_dir / "layers-09999.parquet")
    code, out, err = report_of(copy)
    assert code == 0 and "Traceback" not in err, err
    assert f"warning: {run.path.name}: corrupt: unreadable layers metrics" in out


def test_dollar_signs_in_run_names_are_drawn_as_text(copy, tmp_path):
    odd = tmp_path / "odd"
    config = find_runs(copy)[0].config.read_text()  # one config: titles are the run names
    for i, run in enumerate(find_runs(copy)):
        shutil.copytree(run.path, odd / f"r{i}$\\frac{{$x")
        (odd / f"r{i}$\\frac{{$x" / "config.yaml").write_text(config)
    code, out, _ = report_of(odd)
    assert code == 0 and "not drawn" not in out, out
    assert all((odd / "report" / png).exists() for png in PNGS)


def test_a_report_killed_while_it_is_built_leaves_the_old_report_whole(copy):
    report = copy / "report"
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    for run in find_runs(copy):  # a new report will differ from the old in every table
        run.summary_file.unlink()
    started = time.time()
    process = start_vgx("report", str(copy), cwd=copy.parent)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        written = [p for p in copy.rglob("summary.csv") if p.stat().st_mtime > started]
        if written:  # the new tables exist: the figures are still to come
            break
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    after = {p.name: p.read_bytes() for p in report.iterdir()}
    assert after == before  # killed once the new tables existed: the old report, untouched


def test_report_directory_that_is_a_file_is_one_line(copy):
    shutil.rmtree(copy / "report")
    (copy / "report").write_text("a file")
    code, _, err = report_of(copy)
    assert code == 1
    assert err.strip().splitlines() == [
        f"vgx: error: the report directory={copy / 'report'}: {copy / 'report'} is a file, "
        "not a directory"
    ]


def test_compare_out_that_is_a_file_is_one_line(copy, tmp_path):
    (tmp_path / "out").write_text("a file")
    result = run_vgx("compare", str(copy), str(copy), "--out", "out", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "vgx: error: the report directory=out: out is a file, not a directory"
    ]


def test_diagnose_lists_a_run_with_an_unreadable_config_and_diagnoses_the_others(copy):
    broken, _ = find_runs(copy)
    broken.config.write_text("act: [unclosed")
    result = run_vgx("diagnose", str(copy), cwd=copy.parent)
    assert result.returncode == 0, result.stderr
    assert f"not diagnosed: {broken.path.name}: unreadable config.yaml" in result.stdout
    assert "1 runs in" in result.stdout


def test_report_varying_keys_leave_out_a_run_with_an_unreadable_config(copy):
    find_runs(copy)[0].config.write_text("act: [unclosed")
    code, out, _ = report_of(copy)
    assert code == 0
    assert "(varying: none)" in out


def test_report_names_a_run_with_a_truncated_hist_chunk_as_corrupt(copy):
    run = find_runs(copy)[0]
    chunk = chunk_files(run.metrics_dir, "hist")[0]
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    code, out, _ = report_of(copy)
    assert code == 0
    assert f"warning: {run.path.name}: corrupt: unreadable hist metrics: {chunk.name}" in out


def test_two_reports_built_at_once_both_succeed_and_leave_one_whole_report(copy):
    first, second = (start_vgx("report", str(copy), cwd=copy.parent) for _ in range(2))
    for process in (first, second):
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    assert all((copy / "report" / png).exists() for png in PNGS)
    assert [p.name for p in copy.iterdir() if p.name.startswith(".report")] == []
