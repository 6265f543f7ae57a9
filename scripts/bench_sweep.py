"""Sweep launchers side by side: basic (sequential) vs joblib (parallel), and per-run overhead.

Prints wall times and ratios measured in this one process, one after the other; asserts nothing.
Targets (issue "Scale out"): joblib with 2 jobs at least 1.7x faster than basic for 8 runs, and
the basic launcher's overhead per run beyond training under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

VGX = str(Path(sys.executable).with_name("vgx"))
SMALL = ("depth=4", "width=64", "progress=false", "--no-report")


def sweep(cwd: Path, name: str, *args: str) -> float:
    """Run `vgx sweep` into cwd/name; return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(
        [VGX, "sweep", *args, f"hydra.sweep.dir={name}"], cwd=cwd, check=True, capture_output=True
    )
    return time.perf_counter() - started


def train_seconds(sweep_dir: Path) -> float:
    """Sum of the runs' own training wall time (from their summaries)."""
    return sum(json.loads(p.read_text())["wall_time_s"] for p in sweep_dir.glob("*/summary.json"))


def metrics(sweep_dir: Path) -> pd.DataFrame:
    frames = [
        pd.read_parquet(p).assign(run=p.parent.parent.name)
        for p in sorted(sweep_dir.glob("*/metrics/layers-*.parquet"))
    ]
    return pd.concat(frames).sort_values(["run", "step", "layer"]).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    seeds = "seed=" + ",".join(str(s) for s in range(args.runs))
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        work = (seeds, f"steps={args.steps}", *SMALL)
        print(f"{args.runs} runs, MLP depth 4 width 64, {args.steps} steps each")
        basic = sweep(cwd, "basic", *work, "hydra/launcher=basic")
        joblib = sweep(cwd, "joblib", *work, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
        basic1 = sweep(cwd, "basic1", *work, "hydra/launcher=basic", "threads=1")
        print(f"  basic launcher (threads=cores)  {basic:7.1f} s")
        print(f"  basic launcher (threads=1)      {basic1:7.1f} s")
        print(f"  joblib, 2 jobs (threads=1)      {joblib:7.1f} s")
        print(f"  speed-up joblib vs basic        {basic / joblib:7.2f}x  (target >= 1.7x)")
        print(f"  speed-up joblib vs basic, t=1   {basic1 / joblib:7.2f}x")
        same = metrics(cwd / "joblib").equals(metrics(cwd / "basic1"))
        print(f"  joblib metrics identical to basic with the same threads: {same}")

        one = sweep(cwd, "one", "seed=0", "steps=1", *SMALL, "hydra/launcher=basic")
        many = sweep(cwd, "many", "seed=range(0,20)", "steps=1", *SMALL, "hydra/launcher=basic")
        extra = (many - one) - (train_seconds(cwd / "many") - train_seconds(cwd / "one"))
        print("20 runs with steps=1, basic launcher")
        print(f"  1-run sweep {one:.1f} s (start-up included), 20-run sweep {many:.1f} s")
        print(f"  overhead per run beyond training: {extra / 19:.3f} s  (target < 0.5 s)")


if __name__ == "__main__":
    main()
