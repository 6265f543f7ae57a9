"""Sweep throughput: the default launcher (vgx_local, one worker per core) against the basic
launcher with its default threads, for 8 runs of at least 2 s each; then where a run's overhead
goes (process start, imports, worker start, Hydra's per-job set-up, the report).

Wall times are measured one after the other in this process; the ratio needs the cores to
itself, so run it on an idle machine. Target (issue 16): the default at least 1.7x faster.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VGX = str(Path(sys.executable).with_name("vgx"))
WORK = ("depth=4", "width=64", "progress=false")
CALIBRATION_STEPS = 300


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Wall time of `command` in seconds (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def sweep(cwd: Path, name: str, *args: str, env: dict[str, str] | None = None) -> float:
    """`vgx sweep ARGS` into cwd/name, without the report; its wall time."""
    command = [VGX, "sweep", *args, f"hydra.sweep.dir={name}", "--no-report"]
    return timed(command, cwd, env)


def train_times(sweep_dir: Path) -> list[float]:
    """Each run's own training time (its summary's wall_time_s)."""
    return [json.loads(p.read_text())["wall_time_s"] for p in sweep_dir.glob("*/summary.json")]


def python_seconds(code: str, cwd: Path) -> float:
    return timed([sys.executable, "-c", code], cwd)


def steps_for(seconds: float, cwd: Path) -> int:
    """Steps that make one single-threaded run train for `seconds` on this machine."""
    sweep(cwd, "calibrate", "seed=0", f"steps={CALIBRATION_STEPS}", "threads=1", *WORK)
    per_step = train_times(cwd / "calibrate")[0] / CALIBRATION_STEPS
    return math.ceil(seconds / per_step)


def spawned_worker_start(workers: int) -> tuple[float, float]:
    """(start, import) seconds of a worker started as a fresh interpreter instead of a fork."""
    from vgx.launch.local import PRELOAD
    from vgx.launch.pool import Job, WorkerPool

    with WorkerPool(workers, PRELOAD, method="spawn") as pool:
        pool.run([Job("os:getpid")] * workers)
        return (
            statistics.mean(s.start_s for s in pool.starts),
            statistics.mean(s.import_s for s in pool.starts),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="training time of one run")
    args = parser.parse_args()
    from vgx.environment import usable_cores

    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        before = " ".join(f"{v:.2f}" for v in os.getloadavg())
        steps = steps_for(args.seconds, cwd)
        work = ("seed=" + ",".join(str(s) for s in range(args.runs)), f"steps={steps}", *WORK)
        timings = cwd / "timings.jsonl"
        env = {**os.environ, "VGX_LAUNCH_TIMINGS": str(timings)}
        default = sweep(cwd, "default", *work, env=env)
        basic = sweep(cwd, "basic", *work, "hydra/launcher=basic")
        report = timed([VGX, "report", "default"], cwd)

        after = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(
            f"{args.runs} runs, MLP depth 4 width 64, {steps} steps each, {usable_cores()} cores; "
            f"load average {before} before, {after} after"
        )
        for label, name, wall in (
            ("default (vgx_local)", "default", default),
            ("basic, default threads", "basic", basic),
        ):
            train = statistics.mean(train_times(cwd / name))
            print(f"  {label:<24} {wall:7.1f} s   training per run {train:5.2f} s")
        print(f"  speed-up default vs basic {basic / default:7.2f}x  (target >= 1.7x)")

        launch = json.loads(timings.read_text().splitlines()[-1])
        jobs, forked = launch["jobs"], launch["workers"]
        spawn_start, spawn_import = spawned_worker_start(len(forked))
        start = python_seconds("pass", cwd)
        torch_import = python_seconds("import torch", cwd) - start
        vgx_import = python_seconds("import torch, vgx.train", cwd) - start - torch_import
        one_run = sweep(cwd, "one", "seed=0", "steps=1", *WORK, "hydra/launcher=basic")
        job_overhead = statistics.mean(j["job_s"] for j in jobs) - statistics.mean(
            train_times(cwd / "default")
        )
        print("where a run's overhead goes (seconds)")
        print(f"  python start                          {start:6.2f}")
        print(f"  import torch                          {torch_import:6.2f}")
        print(f"  import vgx.train after torch          {vgx_import:6.2f}")
        print(f"  front end, 1-run sweep of 1 step      {one_run:6.2f}  (once per sweep)")
        forked_start = statistics.mean(w["start_s"] for w in forked)
        print(f"  worker start, forked (the default)    {forked_start:6.2f}  (once per worker)")
        print(
            f"  worker start, spawned, for comparison {spawn_start:6.2f}  (of it imports "
            f"{spawn_import:.2f})"
        )
        compose = statistics.mean(j["compose_s"] for j in jobs)
        print(f"  Hydra set-up of one job in a worker   {compose:6.2f}  (per run)")
        print(f"  a job beyond its training, all in     {job_overhead:6.2f}  (per run)")
        print(f"  vgx report of the {args.runs}-run sweep          {report:6.2f}  (once per sweep)")


if __name__ == "__main__":
    main()
