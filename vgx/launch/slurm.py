"""`hydra/launcher=vgx_slurm`: a sweep's runs packed into SLURM array tasks (submitit).

One array task per run spends more time in the scheduler and in Python's imports than in a short
run, so each task runs a pack of `runs_per_task` runs through the same process pool as a local
sweep (vgx/launch/pool.py), `workers` of them at a time inside its allocation: locks, the tally
and resume are the local code. Hydra finds the launcher as hydra_plugins.vgx_launchers.vgx_slurm.

Stopping (a time limit, a preemption, `scancel --signal=TERM`): submitit's own handlers ignore
SIGTERM and turn its USR2 warning into an exception, so a run ended `failed`. A task here turns
SIGTERM, SIGHUP and submitit's signal into an interrupt of its pack instead: the runs in flight
end `interrupted` at once (resumable from their checkpoints by running the sweep again), and with
`requeue` the task puts itself back in the queue (`scontrol requeue`, at most `max_requeues`
times), where the same pack runs again: finished runs are skipped, interrupted ones resume.

The front end waits for the tasks by their result files and `squeue` (not sacct: clusters without
accounting have none); Ctrl-C cancels the array, whose runs then end `interrupted`.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from vgx.interrupts import raise_terminated
from vgx.launch.local import PRELOAD, SweepLauncher, job_returns, run_hydra_job
from vgx.launch.pool import Job, function_ref, run_pack
from vgx.status import FAILED, INTERRUPTED
from vgx.store import RunDir, atomic_write_json
from vgx.sweep.manifest import SLURM_JOBS, read_manifest
from vgx.sweep.progress import record_progress

log = logging.getLogger(__name__)

POLL_S = 1.0
LOST_AFTER_S = 30.0  # a task gone from squeue this long without a result file is lost
PREEMPT_SIGNAL = "SIGUSR2"  # submitit's warning signal ahead of a time limit (--signal=USR2@N)
STOP_REASONS = {  # a task's Terminated message -> what a run's status says stopped it
    "received signal SIGUSR2": "SLURM's warning ahead of the time limit (SIGUSR2)",
    "received signal SIGTERM": "SIGTERM (preemption, scancel or the time limit)",
    "received signal SIGHUP": "SIGHUP",
}


def packs(jobs: Sequence[Any], runs_per_task: int) -> list[list[Any]]:
    """Consecutive groups of `runs_per_task` jobs (the last one may be shorter)."""
    size = max(1, runs_per_task)
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def _job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")


def run_pack_task(
    pack: list[tuple[int, list[str]]],
    shared: bytes,
    workers: int,
    requeue: bool,
    max_requeues: int,
    sweep_dir: str,
) -> list[JobReturn]:
    """One array task: its pack of runs through the pool; on a stop signal, interrupted runs and
    (with `requeue`) the task back in the queue."""
    for signum in (signal.SIGTERM, signal.SIGHUP, getattr(signal, PREEMPT_SIGNAL)):
        signal.signal(signum, raise_terminated)  # replaces submitit's handlers
    os.environ["VGX_PARALLEL_JOBS"] = str(workers)  # each run's threads: the allocation's share
    jobs = [Job(function_ref(run_slim_job), (idx, overrides, shared)) for idx, overrides in pack]
    started = time.time()
    try:
        return job_returns(run_pack(jobs, workers, PRELOAD))
    except KeyboardInterrupt as err:
        why = f"{STOP_REASONS.get(str(err), str(err))} in SLURM job {_job_id()}"
        record_stop(Path(sweep_dir), pack, why, started)
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        if requeue and restarts < max_requeues:
            subprocess.run(["scontrol", "requeue", _job_id()], check=True, timeout=60)
            print(f"vgx: {why}; requeued (restart {restarts + 1})", file=sys.stderr)
            sys.exit(0)  # no result file: the requeued task will write it
        print(f"vgx: {why}; runs in flight recorded interrupted", file=sys.stderr)
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=INTERRUPTED) for _ in pack]


def record_stop(sweep_dir: Path, pack: list[tuple[int, list[str]]], why: str, since: float) -> None:
    """Say why a pack stopped: its runs interrupted since `since` get `why` as their message
    (they only saw the pool's SIGTERM); runs that never started are tallied `interrupted`
    (re-running the command starts them) and stay pending in `vgx status` (no status.json)."""
    names = [entry.get("dir") for entry in read_manifest(sweep_dir)]
    for idx, _ in pack:
        name = names[idx] if idx < len(names) else None
        if not isinstance(name, str):
            continue
        run = RunDir(sweep_dir / name)
        if not run.exists():
            record_progress(sweep_dir, name, INTERRUPTED)
            continue
        record = run.read_status()
        if record["status"] == INTERRUPTED and record.get("updated", 0) >= since:
            kept = {k: record[k] for k in ("config_hash", "resumed_from") if k in record}
            run.write_status(INTERRUPTED, message=why, **kept)


def slim(job_return: JobReturn) -> JobReturn:
    """What the front end needs of a run's JobReturn, pickled back to it: status and value (the
    composed configs hold Hydra's dataclasses, which do not unpickle across processes)."""
    value = job_return._return_value
    if isinstance(value, BaseException):
        value = RuntimeError(f"{type(value).__name__}: {value}")
    return JobReturn(
        overrides=job_return.overrides,
        status=job_return.status,
        _return_value=value,
        task_name=job_return.task_name,
        working_dir=job_return.working_dir,
    )


def run_slim_job(idx: int, overrides: list[str], shared: bytes) -> JobReturn:
    """One run in a pool worker of an array task, its JobReturn slimmed to pickle back."""
    return slim(run_hydra_job(idx, overrides, shared))


class VgxSlurmLauncher(SweepLauncher):
    """Submits packs of a sweep's runs as one SLURM array and waits for them."""

    def __init__(
        self,
        submitit_folder: str,
        partition: str | None = None,
        timeout_min: int = 60,
        cpus_per_task: int = 1,
        gpus_per_node: int = 0,
        mem_gb: int = 4,
        runs_per_task: int = 1,
        workers: int = 0,
        array_parallelism: int = 64,
        signal_delay_s: int = 60,
        requeue: bool = False,
        max_requeues: int = 3,
        additional_parameters: dict[str, Any] | None = None,
    ) -> None:
        self.folder = submitit_folder
        self.parameters = {
            "slurm_partition": partition,
            "timeout_min": timeout_min,
            "cpus_per_task": cpus_per_task,
            "mem_gb": mem_gb,
            "slurm_array_parallelism": array_parallelism,
            # A quarter of a short limit at most: a warning at the start would stop every run.
            "slurm_signal_delay_s": min(signal_delay_s, timeout_min * 60 // 4),
            "slurm_additional_parameters": dict(additional_parameters or {}),
            "name": "vgx",
        }
        if gpus_per_node > 0:  # no GPU: no GRES request, which a cluster without GPUs refuses
            self.parameters["gpus_per_node"] = gpus_per_node
        self.runs_per_task = runs_per_task
        self.workers = workers if workers > 0 else cpus_per_task
        self.requeue, self.max_requeues = requeue, max_requeues

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit  # the cluster's client: only when a sweep goes to SLURM

        sweep_dir, shared = self.begin()
        indexed = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        groups = packs(indexed, self.runs_per_task)
        executor = submitit.AutoExecutor(folder=self.folder, cluster="slurm")
        executor.update_parameters(**self.parameters)
        tasks = executor.map_array(
            run_pack_task,
            groups,
            [shared] * len(groups),
            [self.workers] * len(groups),
            [self.requeue] * len(groups),
            [self.max_requeues] * len(groups),
            [str(sweep_dir.resolve())] * len(groups),
        )
        ids = [task.job_id for task in tasks]
        atomic_write_json(
            sweep_dir / SLURM_JOBS,
            {"jobs": ids, "runs_per_task": self.runs_per_task, "submitted": time.time()},
        )
        log.info("Submitted %d runs as %d SLURM array tasks", len(indexed), len(tasks))
        try:
            results = wait_for(tasks)
        except KeyboardInterrupt:
            subprocess.run(["scancel", *{i.split("_")[0] for i in ids}], check=False, timeout=60)
            raise
        self.end()
        returns: list[JobReturn] = []
        for group, (kind, value) in zip(groups, results, strict=True):
            if kind == "success":
                returns += value
                continue
            message = f"SLURM task ended without its runs' results: {value}"
            for idx, overrides in group:
                self._mark_unfinished(sweep_dir, idx, overrides, message)
                returns.append(JobReturn(status=JobStatus.COMPLETED, _return_value=FAILED))
        return returns

    def _mark_unfinished(self, sweep_dir: Path, idx: int, overrides: list[str], why: str) -> None:
        """A run of a lost task that did not record its own end is `failed` with the reason."""
        from vgx.launch.pool import Claim, mark_lost

        assert self.config is not None and self.hydra_context is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        subdir = str(OmegaConf.select(sweep_config, "hydra.sweep.subdir"))
        claim = Claim(sweep_dir / subdir, sweep_dir, since=0.0)
        if (claim.run_dir / "status.json").exists():
            mark_lost(claim, FAILED, why)
        else:
            record_progress(sweep_dir, subdir, FAILED)


def wait_for(tasks: Sequence[Any]) -> list[tuple[str, Any]]:
    """Each task's ("success", value) or ("error", reason), read from submitit's result files;
    a task that left the queue without one (killed, node lost) is an error after LOST_AFTER_S."""
    results: dict[int, tuple[str, Any]] = {}
    gone_since: dict[int, float] = {}
    while len(results) < len(tasks):
        queued = queued_ids()
        for index, task in enumerate(tasks):
            if index in results:
                continue
            path = task.paths.result_pickle
            if path.exists():
                with open(path, "rb") as handle:
                    results[index] = pickle.load(handle)
            elif queued is not None and task.job_id not in queued:
                since = gone_since.setdefault(index, time.monotonic())
                if time.monotonic() - since > LOST_AFTER_S:
                    results[index] = ("error", f"{task.job_id} left the queue")
            else:
                gone_since.pop(index, None)
        if len(results) < len(tasks):
            time.sleep(POLL_S)
    return [results[i] for i in range(len(tasks))]


def queued_ids() -> set[str] | None:
    """Job ids squeue lists (array tasks as JOB_TASK), or None when squeue does not answer."""
    try:
        listed = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if listed.returncode != 0:
        return None
    return set(listed.stdout.split())
