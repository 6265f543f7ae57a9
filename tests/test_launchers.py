"""Every launcher available here produces the same runs, read the same way by the reporter."""

from __future__ import annotations

import pandas as pd

from tests.helpers import run_vgx
from vgx.environment import usable_cores
from vgx.report import build_report

SWEEP = ("sweep", "act=sigmoid,relu", "steps=8", "width=8", "threads=1", "--no-report")
LAUNCHERS = {
    "basic": ("hydra/launcher=basic",),
    "default": (),  # vgx_local, vgx's own pool, with a worker per core
    "vgx_local": ("hydra/launcher=vgx_local", "hydra.launcher.workers=2"),
    "joblib": ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
    "submitit_local": ("hydra/launcher=submitit_local",),
}
SAME_ACROSS_LAUNCHERS = [
    "run",
    "status",
    "act",
    "test_loss_final",
    "train_loss_final",
    "decades_lost_grad_init",
    "decades_lost_act_end",
]


def test_each_launcher_gives_identical_tables(tmp_path):
    tables = {}
    for name, launcher in LAUNCHERS.items():
        result = run_vgx(*SWEEP, *launcher, f"hydra.sweep.dir={name}", cwd=tmp_path, timeout=400)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "2 done" in result.stdout
        if name == "default" and usable_cores() > 1:
            assert "(vgx_local launcher)" in result.stderr
        summary = build_report(tmp_path / name, echo=False).summary
        tables[name] = summary[SAME_ACROSS_LAUNCHERS].sort_values("run").reset_index(drop=True)
    for name in ("default", "vgx_local", "joblib", "submitit_local"):
        pd.testing.assert_frame_equal(tables["basic"], tables[name], check_exact=True)
