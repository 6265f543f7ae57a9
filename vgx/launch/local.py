"""`hydra/launcher=vgx_local`: Hydra's jobs run on vgx's own process pool (vgx/launch/pool.py).

Hydra finds the launcher as hydra_plugins.vgx_launchers.vgx_local (a subclass of this one).

The default for parallel sweeps. Built like Hydra's BasicLauncher and the joblib plugin: the
front end hands each job's overrides to a worker, which composes that job's config and calls
hydra.core.utils.run_job there, so per-job Hydra set-up runs in parallel too. A job whose worker
died still returns a completed JobReturn (its run is recorded `failed` by the pool): Hydra's
sweeper re-raises a failed one and would end the sweep, and vgx keeps every outcome in the runs.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from vgx.environment import usable_cores
from vgx.launch.pool import (
    Job,
    Outcome,
    WorkerStart,
    claim,
    function_ref,
    pool_for,
    record_time,
    resolve,
)
from vgx.status import FAILED

log = logging.getLogger(__name__)

# What a worker imports once, before its first job: torch and the training loop (seconds each).
PRELOAD = ("vgx.train",)
TIMINGS_ENV = "VGX_LAUNCH_TIMINGS"


class SweepLauncher(Launcher):
    """What vgx's launchers share: Hydra's set-up, and the state every job of a sweep needs."""

    config: DictConfig | None = None
    task_function: TaskFunction | None = None
    hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def begin(self) -> tuple[Path, bytes]:
        """Hydra's globals and logging as its own launchers set them; returns the sweep
        directory (created) and the set-up every job shares (config loader, Hydra's state),
        pickled once for all jobs."""
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        shared = pickle.dumps(
            (
                self.hydra_context,
                self.config,
                function_ref(self.task_function),
                Singleton.get_state()["instances"],
            )
        )
        return sweep_dir, shared

    def end(self) -> None:
        """Hydra's logging again: a job may have reconfigured it."""
        assert self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)


class VgxLocalLauncher(SweepLauncher):
    """Runs a sweep's jobs on `workers` pool processes that the front end owns."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers if workers > 0 else usable_cores()

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        _, shared = self.begin()
        log.info("Launching %d jobs on %d vgx_local workers", len(job_overrides), self.workers)
        jobs = [
            Job(function_ref(run_hydra_job), (initial_job_idx + i, list(overrides), shared))
            for i, overrides in enumerate(job_overrides)
        ]
        with pool_for(self.workers, PRELOAD) as pool:
            outcomes = pool.run(jobs)
            record_timings(pool.starts, outcomes)
        self.end()
        return job_returns(outcomes)


def job_returns(outcomes: Sequence[Outcome]) -> list[JobReturn]:
    """Hydra's JobReturn of each pool outcome; a lost worker's job is completed (its run says
    `failed`), so that Hydra's sweeper does not end the sweep over it."""
    returns = []
    for outcome in outcomes:
        if outcome.died is not None:
            returns.append(JobReturn(status=JobStatus.COMPLETED, _return_value=FAILED))
        elif outcome.error is not None:
            returns.append(JobReturn(status=JobStatus.FAILED, _return_value=outcome.error))
        else:
            returns.append(outcome.value)
    return returns


def record_timings(starts: list[WorkerStart], outcomes: list[Outcome]) -> None:
    """Where the time went, appended as one JSON line to $VGX_LAUNCH_TIMINGS when it is set
    (scripts/bench_sweep.py reads it)."""
    path = os.environ.get(TIMINGS_ENV)
    if not path:
        return
    record = {"workers": [asdict(s) for s in starts], "jobs": [o.timings for o in outcomes]}
    with open(path, "a", encoding="utf-8") as log_file:
        log_file.write(json.dumps(record) + "\n")


def adopt_singletons(instances: dict[type, Any]) -> None:
    """The front end's Hydra singletons (config store, job runtime), keeping this worker's own
    plugin registry and OmegaConf resolvers: Singleton.set_state would rescan every plugin per
    job, and resolvers are closures that do not pickle (the task's module registers them)."""
    plugins = Singleton._instances.get(Plugins)
    Singleton._instances = {**instances, **({Plugins: plugins} if plugins else {})}


def run_hydra_job(idx: int, overrides: list[str], shared: bytes) -> JobReturn:
    """One job in a worker: compose its config, claim its run directory, run the task."""
    hydra_context, config, task_ref, instances = pickle.loads(shared)
    task_function = resolve(task_ref)  # imports the task's module (and its resolvers) first
    setup_globals()
    adopt_singletons(instances)
    started = time.perf_counter()
    sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    sweep_dir = Path(str(OmegaConf.select(sweep_config, "hydra.sweep.dir")))
    claim(sweep_dir / str(OmegaConf.select(sweep_config, "hydra.sweep.subdir")), sweep_dir)
    record_time("compose_s", time.perf_counter() - started)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
