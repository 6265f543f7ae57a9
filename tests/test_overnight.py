"""Overnight safety, each a real scenario in a subprocess: kills, interrupts, failures, resume."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TINY, run_vgx, start_vgx, vgx_env
from vgx.store import RunDir, find_runs, read_metrics
from vgx.sweep.progress import read_progress

FAULTY_VGX = str(Path(__file__).with_name("drivers") / "faulty_vgx.py")


def wait_for(condition, timeout: float = 120.0, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(every)


def statuses(root: Path) -> dict[str, str]:
    return {run.path.name: run.read_status()["status"] for run in find_runs(root)}


def test_sweep_killed_with_sigkill_and_rerun_completes_every_run_exactly_once(tmp_path):
    args = (
        "sweep",
        "seed=0,1,2,3",
        "steps=150",
        "width=8",
        "threads=1",
        "progress=false",
        "probe.chunk_rows=40",
        "hydra.sweep.dir=s",
        "--no-report",
    )
    sweep = tmp_path / "s"
    process = start_vgx(*args, cwd=tmp_path)
    wait_for(lambda: read_progress(sweep)["done"] >= 1)
    os.killpg(process.pid, signal.SIGKILL)  # the whole sweep, parallel workers included
    process.wait()
    done_before = {n for n, s in statuses(sweep).items() if s == "done"}
    assert 1 <= len(done_before) < 4

    result = run_vgx(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = read_progress(sweep)
    assert counts["skipped"] == len(done_before)
    assert counts["done"] == 4 - len(done_before)
    assert set(statuses(sweep).values()) == {"done"}
    for run in find_runs(sweep):
        layers = run.read_table("layers")
        assert sorted(layers["step"].unique()) == list(range(150))


def test_rerun_skips_done_runs_only_when_the_resolved_config_is_the_same(tmp_path):
    first = run_vgx("sweep", "depth=2,3", *TINY, "hydra.sweep.dir=s", "--no-report", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    status_file = RunDir(tmp_path / "s" / "depth=2,steps=5,width=8").status_file
    record = json.loads(status_file.read_text())
    record["config_hash"] = "from-another-config"
    status_file.write_text(json.dumps(record))
    again = run_vgx("sweep", "depth=2,3", *TINY, "hydra.sweep.dir=s", "--no-report", cwd=tmp_path)
    assert "1 done" in again.stdout and "1 skipped" in again.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_marks_the_run_interrupted_and_keeps_what_was_recorded(tmp_path, signum):
    process = start_vgx(
        "run",
        "steps=1000000",
        "width=8",
        "threads=1",
        "progress=false",
        "probe.chunk_rows=50",
        "hydra.run.dir=r",
        cwd=tmp_path,
    )
    run = RunDir(tmp_path / "r")
    wait_for(lambda: any(run.metrics_dir.glob("layers-*.parquet")))
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert run.read_status()["status"] == "interrupted"
    assert "Traceback" not in stderr and "resume" in stderr
    assert len(read_metrics(run.metrics_dir, "layers")) >= 50


def test_failed_and_diverged_runs_do_not_stop_the_sweep_which_exits_non_zero(tmp_path):
    result = run_vgx_script(
        FAULTY_VGX,
        "sweep",
        "data.name=digits,faulty",
        "init_std=0.05,100",
        "init=normal",
        "depth=20",
        *TINY,
        "hydra.sweep.dir=s",
        "--no-report",
        "hydra/launcher=basic",  # the faulty dataset is registered in this process only
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "1 done, 2 failed, 1 diverged, 0 invalid" in result.stdout
    runs = {run.path.name: run for run in find_runs(tmp_path / "s")}
    failed = runs["data.name=faulty,depth=20,init=normal,init_std=0.05,steps=5,width=8"]
    assert "simulated bug in a data loader" in failed.read_status()["message"]
    assert "Traceback" in failed.error_file.read_text()
    diverged = runs["data.name=digits,depth=20,init=normal,init_std=100,steps=5,width=8"]
    status = diverged.read_status()
    assert status["status"] == "diverged" and status["step"] == 0
    assert status["layer"].startswith("blocks.")


def run_vgx_script(script: str, *args: str, cwd: Path):
    import subprocess

    return subprocess.run(
        [sys.executable, script, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env=vgx_env(),
    )
