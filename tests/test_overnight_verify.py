"""A resume verifies each `done` run from its files and redoes the ones that do not verify."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import TINY, run_vgx
from vgx.run.verify import verify_run
from vgx.store import RunDir, chunk_files, find_runs, read_metrics

SWEEP = ("sweep", "depth=2,3", *TINY, "probe.hist_every=1", "probe.chunk_rows=4")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep of two tiny runs, both done (chunks of 4 rows: several per table)."""
    root = tmp_path_factory.mktemp("verify")
    result = run_vgx(*SWEEP, "hydra.sweep.dir=s", "--no-report", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "s"


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> RunDir:
    copy = tmp_path / "run"
    shutil.copytree(find_runs(finished)[0].path, copy)
    return RunDir(copy)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_complete_done_run_verifies(run):
    assert verify_run(run) == []


def test_a_truncated_layers_chunk_fails_verification(run):
    truncate(chunk_files(run.metrics_dir, "layers")[0])
    assert any("layers-00000.parquet" in p for p in verify_run(run))


def test_a_truncated_hist_chunk_fails_verification(run):
    truncate(chunk_files(run.metrics_dir, "hist")[-1])
    assert any("hist-" in p for p in verify_run(run))


def test_a_duplicated_steps_chunk_fails_verification(run):
    first = chunk_files(run.metrics_dir, "steps")[0]
    shutil.copy(first, run.metrics_dir / "steps-00099.parquet")
    assert any("repeat" in p for p in verify_run(run))


def test_a_missing_layers_chunk_fails_verification(run):
    chunk_files(run.metrics_dir, "layers")[-1].unlink()
    assert any("layers metrics hold" in p for p in verify_run(run))


@pytest.mark.parametrize("name", ["config.yaml", "summary.json"])
def test_a_garbage_small_file_fails_verification(run, name):
    (run.path / name).write_text("{[ not what vgx wrote")
    assert verify_run(run)


def test_resume_redoes_a_done_run_that_fails_verification_and_calls_it_repaired(finished):
    root = finished.parent
    broken = find_runs(finished)[0]
    truncate(chunk_files(broken.metrics_dir, "hist")[0])
    again = run_vgx(*SWEEP, "hydra.sweep.dir=s", "--no-report", cwd=root)
    assert again.returncode == 0, again.stderr
    assert "0 done" in again.stdout and "1 skipped, 1 repaired" in again.stdout
    assert verify_run(broken) == []
    assert sorted(read_metrics(broken.metrics_dir, "steps")["step"]) == list(range(5))
