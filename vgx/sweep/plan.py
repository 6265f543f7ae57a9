"""What a `vgx sweep` command will do, worked out before Hydra starts.

Expanding the sweep here (with Hydra's own parser and composition) lets the front end reject a bad
value in one line, size the progress bar, name the sweep directory and pick per-job settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig

from vgx.config import CONFIG_MODULE, to_dict
from vgx.environment import usable_cores
from vgx.errors import ConfigError
from vgx.sweep.names import identity_name, safe_name, typed_text
from vgx.validate import check_overrides, expand, parse_overrides

SWEEPS_ROOT = Path("outputs/sweeps")
# A launcher's name, found in its Hydra _target_ (anything else runs jobs one by one: basic).
TARGET_NAMES = {
    "vgx_launchers.vgx_local": "vgx_local",
    "vgx_launchers.vgx_slurm": "vgx_slurm",
    "joblib": "joblib",
    "submitit": "submitit",
}
# Under a SLURM launcher runs checkpoint by default (minutes): a preempted or timed-out run then
# loses at most this much when it resumes.
SLURM_CHECKPOINT_MIN = 5


@dataclass
class SweepPlan:
    """The expanded sweep: its size, default directory, launcher and extra overrides for jobs."""

    total: int
    default_dir: Path
    launcher: str
    parallel_jobs: int = 1
    extra_overrides: list[str] = field(default_factory=list)


def compose_config(overrides: list[str], hydra: bool = False) -> DictConfig:
    """The config Hydra composes from `overrides` (with its own `hydra` node if asked); a
    composition error is one ConfigError line."""
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            return compose("config", overrides=overrides, return_hydra_config=hydra)
    except HydraException as err:
        raise ConfigError(str(err).strip().splitlines()[0]) from None


def _launcher_name(target: str) -> str:
    lowered = target.lower()
    return next((name for part, name in TARGET_NAMES.items() if part in lowered), "basic")


def plan_sweep(overrides: list[str]) -> SweepPlan:
    """Check every value of the sweep and work out its size, directory and launcher."""
    check_overrides(overrides)
    parsed = parse_overrides(overrides)
    fixed = [typed_text(o) for o in parsed if not o.is_sweep_override()]
    swept = {
        o.key_or_group: o for o in parsed if o.is_sweep_override() and not o.is_hydra_override()
    }
    cfg = compose_config(fixed, hydra=True)
    params = cfg.hydra.sweeper.params
    params = to_dict(params, resolve=False) if params is not None else {}
    from_config = [f"{k}={v}" for k, v in params.items() if k not in swept]
    check_overrides(from_config)  # an experiment file's sweep values get the same checks
    for override in parse_overrides(from_config):
        swept.setdefault(override.key_or_group, override)
    total = math.prod(len(expand(o)) for o in swept.values() if o.is_sweep_override())

    keys = {o.key_or_group for o in parsed}
    extra = []
    target = str(cfg.hydra.launcher.get("_target_", ""))
    launcher = _launcher_name(target)
    jobs = 1  # SLURM jobs each get their own allocation
    if "hydra/launcher" not in keys and min(total, usable_cores()) > 1:
        # Measured (make bench): one single-threaded run per core beats one run on every core,
        # by far when the machine is busy; so parallel is the default wherever cores allow. vgx's
        # own pool, not joblib: a dead loky worker aborts the sweep and a killed front end
        # orphans loky's workers (issue 12).
        launcher, jobs = "vgx_local", min(total, usable_cores())
        extra += ["hydra/launcher=vgx_local", f"hydra.launcher.workers={jobs}"]
    elif launcher == "vgx_local":
        workers = int(cfg.hydra.launcher.get("workers", 0))
        jobs = min(total, workers if workers > 0 else usable_cores())
    elif launcher == "joblib":
        n_jobs = int(cfg.hydra.launcher.get("n_jobs", -1))
        jobs = usable_cores() if n_jobs < 1 else n_jobs
    elif target.endswith("LocalLauncher"):  # submitit_local starts every job at once
        jobs = min(total, usable_cores())
    on_slurm = launcher == "vgx_slurm" or target.endswith("SlurmLauncher")
    if on_slurm and "checkpoint_every" not in keys:
        extra.append(f"checkpoint_every={SLURM_CHECKPOINT_MIN}")
    if launcher != "basic" and "progress" not in keys:
        extra.append("progress=false")  # parallel step bars would garble one terminal

    default_dir = SWEEPS_ROOT / identity_name(parsed, sep="_")
    return SweepPlan(total, default_dir, launcher, jobs, extra)


def sweep_jobs(overrides: list[str]) -> list[tuple[list[str], str | None]]:
    """Every job of the sweep as Hydra's BasicSweeper will launch it: (overrides, run dir name).

    The name is the one `hydra.sweep.subdir` gives by default (the job's override_dirname made
    safe); None when the command sets its own `hydra.sweep.subdir`.
    """
    task = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    custom_subdir = any(o.split("=", 1)[0].lstrip("+") == "hydra.sweep.subdir" for o in overrides)
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            fixed = [typed_text(o) for o in parse_overrides(task) if not o.is_sweep_override()]
            cfg = compose("config", overrides=fixed, return_hydra_config=True)
            params = cfg.hydra.sweeper.params
            params = to_dict(params, resolve=False) if params is not None else {}
            parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
            parsed = parser.parse_overrides([*(f"{k}={v}" for k, v in params.items()), *task])
            (jobs,) = BasicSweeper.split_arguments(parsed, None)
    except HydraException as err:
        raise ConfigError(str(err).strip().splitlines()[0]) from None
    naming = cfg.hydra.job.config.override_dirname
    names = [
        None
        if custom_subdir
        else safe_name(
            get_overrides_dirname(
                parser.parse_overrides(job),
                exclude_keys=list(naming.exclude_keys),
                item_sep=naming.item_sep,
                kv_sep=naming.kv_sep,
            )
        )
        for job in jobs
    ]
    return list(zip(jobs, names, strict=True))
