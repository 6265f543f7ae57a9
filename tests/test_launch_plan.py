"""Which launcher a sweep gets: vgx_local by default wherever cores allow, the user's otherwise."""

from __future__ import annotations

import pytest

from vgx.sweep import plan
from vgx.sweep.plan import plan_sweep


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(plan, "usable_cores", lambda: 2)


def test_a_parallel_sweep_defaults_to_vgx_local_with_a_worker_per_core(two_cores):
    chosen = plan_sweep(["seed=0,1,2"])
    assert (chosen.launcher, chosen.parallel_jobs) == ("vgx_local", 2)
    assert chosen.extra_overrides[:2] == ["hydra/launcher=vgx_local", "hydra.launcher.workers=2"]


def test_one_run_or_one_core_runs_on_the_basic_launcher(monkeypatch):
    monkeypatch.setattr(plan, "usable_cores", lambda: 1)
    assert plan_sweep(["seed=0,1,2"]).launcher == "basic"


@pytest.mark.parametrize(
    ("choice", "launcher", "jobs"),
    [
        (["hydra/launcher=basic"], "basic", 1),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], "joblib", 2),
        (["hydra/launcher=vgx_local", "hydra.launcher.workers=1"], "vgx_local", 1),
        (["hydra/launcher=submitit_local"], "submitit", 2),
    ],
)
def test_a_launcher_the_user_chose_is_kept(two_cores, choice, launcher, jobs):
    chosen = plan_sweep(["seed=0,1,2", *choice])
    assert (chosen.launcher, chosen.parallel_jobs) == (launcher, jobs)
    assert not [o for o in chosen.extra_overrides if o.startswith("hydra")]
