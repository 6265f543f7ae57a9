"""Sweeps through a real SLURM scheduler: the one-node cluster of scripts/slurm-local.sh.

`make test-slurm` installs slurm-wlm, starts the cluster, runs these and stops it. Elsewhere they
skip with one line: slurm-wlm is missing, or no cluster answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import run_vgx, start_vgx
from vgx.report import build_report
from vgx.store import RunDir

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        shutil.which("sinfo") is None, reason="slurm-wlm is not installed (make test-slurm)"
    ),
]

TINY = ("steps=5", "width=8", "threads=1", "--no-report")
SUBMITIT_SLURM = (  # Hydra's own submitit launcher: one array task per run
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
)
VGX_SLURM = ("hydra/launcher=vgx_slurm", "hydra.launcher.partition=debug")
PACKED = ("sweep", "act=sigmoid,relu,tanh", "depth=2,3", *TINY)
STEPS = 8000
LONG = ("sweep", f"steps={STEPS}", "width=8", "threads=1", "--no-report")  # and act=
OFTEN = "checkpoint_every=0.002"  # minutes: every 0.12 s
LONG_RUN = f"act=relu,steps={STEPS},width=8"  # its directory: execution keys are left out
SAME = ["run", "status", "act", "test_loss_final", "train_loss_final", "decades_lost_grad_init"]


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    """A cluster that answers, else one skip line saying how to start one."""
    found = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if found.returncode != 0 or not found.stdout.strip():
        pytest.skip("no SLURM cluster answers (make test-slurm starts a local one)")


def queue_empties(timeout: float = 60.0) -> bool:
    """Whether squeue lists no job within `timeout` (a finished job lingers while completing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout
        if not listed.strip():
            return True
        time.sleep(0.5)
    return False


def summary(sweep_dir) -> pd.DataFrame:
    table = build_report(sweep_dir, echo=False).summary
    return table[SAME].sort_values("run").reset_index(drop=True)


@pytest.fixture(scope="module")
def basic(tmp_path_factory) -> Path:
    """The reference: PACKED's runs, one by one in this process's launcher."""
    cwd = tmp_path_factory.mktemp("basic")
    result = run_vgx(*PACKED, "hydra/launcher=basic", "hydra.sweep.dir=basic", cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return cwd / "basic"


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """PACKED through vgx_slurm, three runs per array task."""
    cwd = tmp_path_factory.mktemp("packed")
    result = run_vgx(
        *PACKED, *VGX_SLURM, "hydra.launcher.runs_per_task=3", "hydra.sweep.dir=p", cwd=cwd
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return cwd / "p", result


def test_submitit_slurm_sweep_matches_the_basic_launcher(tmp_path, basic):
    result = run_vgx(*PACKED, *SUBMITIT_SLURM, "hydra.sweep.dir=slurm", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "6 done" in result.stdout
    pd.testing.assert_frame_equal(summary(basic), summary(tmp_path / "slurm"))
    assert queue_empties()


def test_packed_sweep_matches_the_basic_launcher(packed, basic):
    sweep_dir, result = packed
    assert "6 done" in result.stdout
    pd.testing.assert_frame_equal(summary(basic), summary(sweep_dir))
    assert queue_empties()


def test_packed_sweep_runs_as_one_array_task_per_pack(packed):
    sweep_dir, _ = packed
    jobs = json.loads((sweep_dir / ".vgx-slurm.json").read_text())["jobs"]
    assert len(jobs) == 2
    ran_in = {RunDir(p.parent).read_status()["slurm_job"] for p in sweep_dir.glob("*/status.json")}
    assert ran_in == set(jobs)


def test_vgx_status_shows_a_packed_sweeps_tasks(packed):
    sweep_dir, _ = packed
    shown = run_vgx("status", str(sweep_dir), cwd=sweep_dir).stdout
    assert "6 done, 0 running, 0 failed, 0 diverged, 0 invalid, 0 interrupted, 0 pending" in shown
    assert "SLURM jobs (2):" in shown


def wait_until(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def preempt(cwd: Path, name: str, *extra: str) -> subprocess.Popen[str]:
    """Start LONG through vgx_slurm and `scancel --signal=TERM` its task once its act=relu run
    checkpointed."""
    process = start_vgx(*LONG, *VGX_SLURM, OFTEN, f"hydra.sweep.dir={name}", *extra, cwd=cwd)
    wait_until(lambda: (cwd / name / LONG_RUN / "checkpoint.pt").exists())
    job = json.loads((cwd / name / ".vgx-slurm.json").read_text())["jobs"][0]
    subprocess.run(["scancel", "--signal=TERM", job], check=True)
    return process


@pytest.fixture(scope="module")
def preempted(tmp_path_factory):
    """LONG and a second run packed in one task, preempted by `scancel --signal=TERM` during
    the first; the first run's status and `vgx status` then, and the same command run again."""
    cwd = tmp_path_factory.mktemp("preempted")
    pair = ("act=relu,tanh", "hydra.launcher.runs_per_task=2")
    process = preempt(cwd, "s", *pair)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    run = RunDir(cwd / "s" / LONG_RUN)
    after = run.read_status()
    shown = run_vgx("status", "s", cwd=cwd).stdout
    again = run_vgx(*LONG, *VGX_SLURM, OFTEN, "hydra.sweep.dir=s", *pair, cwd=cwd)
    resumed = run_vgx("status", "s", cwd=cwd).stdout
    return out, after, shown, again, run, resumed


def test_scancel_signal_term_ends_the_run_interrupted(preempted):
    _, after, _, _, _, _ = preempted
    assert after["status"] == "interrupted"
    assert after["message"].startswith("SIGTERM (preemption, scancel or the time limit) in SLURM")


def test_vgx_status_shows_the_resumed_sweep_done(preempted):
    resumed = preempted[5]
    assert "2 done, 0 running, 0 failed, 0 diverged, 0 invalid, 0 interrupted, 0 pending" in resumed


def test_a_preempted_packs_unstarted_run_is_tallied_interrupted(preempted):
    out = preempted[0]
    assert "0 done, 0 failed, 0 diverged, 0 invalid, 2 interrupted" in out


def test_vgx_status_shows_the_preempted_run_with_its_signal_and_the_unstarted_one(preempted):
    shown = preempted[2]
    assert "0 done, 0 running, 0 failed, 0 diverged, 0 invalid, 1 interrupted, 1 pending" in shown
    assert f"interrupted {LONG_RUN}: SIGTERM (preemption, scancel or the time limit)" in shown


def test_running_the_sweep_again_resumes_the_preempted_run(preempted):
    _, _, _, again, run, _ = preempted
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 done" in again.stdout
    status = run.read_status()
    assert status["status"] == "done"
    assert status["resumed_from"] > 0
    assert run.read_table("steps")["step"].tolist() == list(range(STEPS))
    assert queue_empties()


def requeued(job: str) -> bool:
    """Whether `job` is back in the queue, pending (SLURM holds a requeued job for 2 minutes)."""
    found = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True)
    return found.stdout.strip() == "PENDING"


def test_a_requeued_task_resumes_its_preempted_run_itself(tmp_path):
    process = preempt(tmp_path, "s", "act=relu", "hydra.launcher.requeue=true")
    job = json.loads((tmp_path / "s" / ".vgx-slurm.json").read_text())["jobs"][0]
    wait_until(lambda: requeued(job), timeout=60)
    # SLURM's hold of a requeued job (begin time two minutes on) is lifted to keep the test short,
    # but not within the requeue's second: slurmd revokes the old execution's credential with a
    # time in whole seconds and refuses a new one of the same second ("Job credential revoked":
    # the job then ends at once; seen on a loaded box).
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err[-2000:]
    assert "1 done" in out
    run = RunDir(tmp_path / "s" / LONG_RUN)
    assert run.read_status()["resumed_from"] > 0
    assert run.read_table("steps")["step"].tolist() == list(range(STEPS))
    assert queue_empties()


def test_a_time_limit_ends_the_run_interrupted_with_its_checkpoint(tmp_path):
    """Through `hydra/launcher=slurm`, the launcher config the README shows (vgx_slurm's)."""
    endless = ("sweep", "act=relu", "steps=1000000", "width=8", "threads=1", "--no-report")
    slurm = ("hydra/launcher=slurm", "hydra.launcher.partition=debug")
    limit = (
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=1",
    )
    result = run_vgx(
        *endless, *slurm, OFTEN, *limit, "hydra.sweep.dir=s", cwd=tmp_path, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 interrupted" in result.stdout
    (run_dir,) = (tmp_path / "s").glob("act=*")
    status = RunDir(run_dir).read_status()
    assert status["status"] == "interrupted"
    assert status["message"].startswith("SLURM's warning ahead of the time limit (SIGUSR2)")
    assert (run_dir / "checkpoint.pt").exists()
    assert queue_empties()


def test_vgx_status_follows_a_detached_slurm_sweep_from_running_to_done(tmp_path):
    result = run_vgx(*LONG, "act=relu", *VGX_SLURM, "hydra.sweep.dir=s", "--detach", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = RunDir(tmp_path / "s" / LONG_RUN)
    wait_until(lambda: run.exists() and run.read_status()["status"] == "running")
    running = run_vgx("status", "s", cwd=tmp_path).stdout
    detached = tmp_path / "s" / ".vgx-detach.json"
    wait_until(lambda: "exit_code" in json.loads(detached.read_text()), timeout=180)
    ended = run_vgx("status", "s", cwd=tmp_path).stdout
    assert "front end: alive" in running
    assert "1 running" in running
    assert "SLURM jobs (1):" in running
    assert "front end: ended with exit code 0" in ended
    assert "1 done" in ended


def test_ctrl_c_of_the_front_end_cancels_the_array_and_interrupts_its_runs(tmp_path):
    process = start_vgx(*LONG, "act=relu", *VGX_SLURM, OFTEN, "hydra.sweep.dir=s", cwd=tmp_path)
    wait_until(lambda: (tmp_path / "s" / LONG_RUN / "checkpoint.pt").exists())
    os.killpg(process.pid, signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130
    assert queue_empties()
    assert RunDir(tmp_path / "s" / LONG_RUN).read_status()["status"] == "interrupted"


def test_a_task_killed_without_a_result_fails_its_runs_with_the_reason(tmp_path):
    process = start_vgx(*LONG, "act=relu", *VGX_SLURM, OFTEN, "hydra.sweep.dir=s", cwd=tmp_path)
    wait_until(lambda: (tmp_path / "s" / LONG_RUN / "checkpoint.pt").exists())
    job = json.loads((tmp_path / "s" / ".vgx-slurm.json").read_text())["jobs"][0]
    # As a lost node would: the run's worker and the task's process die at once, saying nothing.
    worker = json.loads((tmp_path / "s" / LONG_RUN / ".vgx-lock").read_text())["pid"]
    task = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(task, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 1, err[-2000:]
    assert "1 failed" in out
    status = RunDir(tmp_path / "s" / LONG_RUN).read_status()
    assert status["status"] == "failed"
    assert status["message"] == f"SLURM task ended without its runs' results: {job} left the queue"
    assert queue_empties()
