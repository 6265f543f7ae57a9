"""Checkpoints: a killed run, run again, continues from its checkpoint with every step once."""

from __future__ import annotations

import os
import signal
import time

import pandas as pd
import pytest
import torch

from tests.helpers import run_vgx, start_vgx
from vgx.errors import ConfigError
from vgx.interrupts import HeldStop, Terminated
from vgx.run.checkpoint import CHECKPOINT, Checkpointer, load_resume, prune_metrics
from vgx.store import MetricsWriter, RunDir, chunk_files
from vgx.train import train
from vgx.validate import check_overrides

STEPS = 400
RUN = ("run", f"steps={STEPS}", "width=8", "threads=1", "progress=false", "--no-report")
OFTEN = "checkpoint_every=0.0005"  # minutes: a checkpoint every 30 ms, many within the run


def checkpointed_steps(run_dir) -> int:
    """Steps done at the run's latest checkpoint (0 while there is none)."""
    try:
        return int(torch.load(run_dir / CHECKPOINT, weights_only=False)["steps_done"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


def kill_after_a_checkpoint(tmp_path, name: str) -> int:
    """Start the run, SIGKILL it once a checkpoint is past step 50; the steps checkpointed."""
    process = start_vgx(*RUN, OFTEN, f"hydra.run.dir={name}", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while checkpointed_steps(tmp_path / name) < 50:
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    return checkpointed_steps(tmp_path / name)


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> RunDir:
    """The run, uninterrupted."""
    tmp_path = tmp_path_factory.mktemp("whole")
    result = run_vgx(*RUN, "hydra.run.dir=whole", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    return RunDir(tmp_path / "whole")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, whole):
    """A run killed after a checkpoint and run again, beside the same run uninterrupted."""
    tmp_path = tmp_path_factory.mktemp("resume")
    killed_at = kill_after_a_checkpoint(tmp_path, "killed")
    again = run_vgx(*RUN, OFTEN, "hydra.run.dir=killed", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    return killed_at, RunDir(tmp_path / "killed"), whole


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run sent SIGTERM mid-training with checkpoint_every=10 (no periodic checkpoint in time):
    its status and checkpoint then, and the run after the same command again."""
    tmp_path = tmp_path_factory.mktemp("stopped")
    process = start_vgx(*RUN, "checkpoint_every=10", "hydra.run.dir=r", cwd=tmp_path)
    run = RunDir(tmp_path / "r")
    deadline = time.monotonic() + 120
    while not run.layers_file.exists():  # written after step 0; the rest takes about 0.6 s
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGTERM)
    process.communicate()
    after = run.read_status()
    at = checkpointed_steps(run.path)
    again = run_vgx(*RUN, "checkpoint_every=10", "hydra.run.dir=r", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    return after, at, run


def test_a_killed_run_continues_from_its_last_checkpoint(resumed):
    killed_at, run, _ = resumed
    assert 50 <= killed_at < STEPS
    status = run.read_status()
    assert status["status"] == "done"
    assert status["resumed_from"] == killed_at


def test_a_resumed_run_records_exactly_the_uninterrupted_runs_metrics(resumed):
    _, run, whole = resumed
    for table in ("steps", "layers", "evals"):
        again = run.read_table(table).reset_index(drop=True)
        once = whole.read_table(table).reset_index(drop=True)
        pd.testing.assert_frame_equal(again, once, check_exact=True)


def test_every_step_is_in_the_metrics_exactly_once_after_a_resume(resumed):
    _, run, _ = resumed
    assert run.read_table("steps")["step"].tolist() == list(range(STEPS))


def test_a_stop_signal_saves_a_checkpoint_at_the_end_of_the_step(stopped):
    after, at, _ = stopped
    assert after["status"] == "interrupted"
    assert after["message"] == "received signal SIGTERM"
    assert 0 < at < STEPS


def test_a_run_stopped_by_a_signal_resumes_exactly_where_it_stopped(stopped, whole):
    _, at, run = stopped
    assert run.read_status()["resumed_from"] == at
    for table in ("steps", "layers", "evals"):
        again = run.read_table(table).reset_index(drop=True)
        once = whole.read_table(table).reset_index(drop=True)
        pd.testing.assert_frame_equal(again, once, check_exact=True)


def test_a_second_stop_signal_stops_at_once():
    held = HeldStop()
    held.hold(signal.SIGTERM, None)
    with pytest.raises(Terminated, match="SIGTERM"):
        held.hold(signal.SIGTERM, None)


def test_a_finished_run_keeps_no_checkpoint(resumed):
    _, run, _ = resumed
    assert not (run.path / CHECKPOINT).exists()


def test_resuming_removes_the_chunks_written_after_the_checkpoint(tmp_path):
    run = RunDir(tmp_path)
    with MetricsWriter(run.metrics_dir) as writer:
        for step in range(3):
            writer.append("steps", {"step": [step]})
            writer.flush()
    kept = {"steps": [p.name for p in chunk_files(run.metrics_dir, "steps")[:2]]}
    prune_metrics(run, kept)
    assert [p.name for p in chunk_files(run.metrics_dir, "steps")] == kept["steps"]


@pytest.mark.parametrize("value", ["-1", "abc"])
def test_checkpoint_every_rejects_what_is_not_a_duration(value):
    with pytest.raises(ConfigError, match="checkpoint_every"):
        check_overrides([f"checkpoint_every={value}"])


class OnceAfter(Checkpointer):
    """One checkpoint, after `steps` steps (the loop asks `due` once after every step)."""

    def __init__(self, run: RunDir, steps: int) -> None:
        super().__init__(run, "h", every_min=1.0)
        self.asked, self.steps = 0, steps

    def due(self) -> bool:
        self.asked += 1
        return self.asked == self.steps


@pytest.mark.parametrize(
    "overrides",
    [("probe.every=3",), ("model=lstm", "depth=2", "seq_len=4", "probe.hist_every=5")],
    ids=["probe-every-3", "lstm-with-histograms"],
)
def test_resuming_from_a_checkpoint_repeats_the_uninterrupted_metrics(
    make_cfg, tmp_path, overrides
):
    cfg = make_cfg("steps=40", "width=8", "threads=1", "eval_every=7", *overrides)
    whole = RunDir(tmp_path / "whole")
    train(cfg, whole)
    cut = RunDir(tmp_path / "cut")
    train(cfg, cut, checkpoints=OnceAfter(cut, steps=17))  # as if it had stopped there
    resume = load_resume(cut, "h")
    assert resume is not None and resume.steps_done == 17
    train(cfg, cut, resume=resume)
    for table in ("steps", "layers", "evals", "time", "hist"):
        again = cut.read_table(table).reset_index(drop=True)
        once = whole.read_table(table).reset_index(drop=True)
        pd.testing.assert_frame_equal(again, once, check_exact=True)
