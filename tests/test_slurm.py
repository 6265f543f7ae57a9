"""Sweeps through a real SLURM scheduler: the one-node cluster of scripts/slurm-local.sh.

`make test-slurm` installs slurm-wlm, starts the cluster, runs these and stops it. Elsewhere they
skip with one line: slurm-wlm is missing, or no cluster answers.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pandas as pd
import pytest

from tests.helpers import run_vgx
from vgx.report import build_report

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        shutil.which("sinfo") is None, reason="slurm-wlm is not installed (make test-slurm)"
    ),
]

TINY = ("steps=5", "width=8", "threads=1", "--no-report")
SLURM = (
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
)
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


def test_submitit_slurm_sweep_matches_the_basic_launcher(tmp_path):
    sweep = ("sweep", "act=sigmoid,relu", *TINY)
    basic = run_vgx(*sweep, "hydra/launcher=basic", "hydra.sweep.dir=basic", cwd=tmp_path)
    slurm = run_vgx(*sweep, *SLURM, "hydra.sweep.dir=slurm", cwd=tmp_path)
    assert basic.returncode == 0, basic.stderr[-2000:]
    assert slurm.returncode == 0, slurm.stderr[-2000:]
    assert "2 done" in slurm.stdout
    pd.testing.assert_frame_equal(summary(tmp_path / "basic"), summary(tmp_path / "slurm"))
    assert queue_empties()
