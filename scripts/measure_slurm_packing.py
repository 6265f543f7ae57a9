"""Wall time of 40 short runs through `hydra/launcher=vgx_slurm`, packed 1, 5 and 20 per task.

Needs a SLURM cluster (SLURM_CONF; `scripts/slurm-local.sh start DIR` starts a one-node one).
Each sweep runs in a fresh temporary directory; the time is the whole `vgx sweep` command, from
submission to the last run's end (no report). Prints a Markdown table.

    SLURM_CONF=/tmp/x/slurm.conf .venv/bin/python scripts/measure_slurm_packing.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VGX = str(Path(sys.executable).with_name("vgx"))
SWEEP = ("sweep", "seed=range(0,40)", "steps=20", "width=8", "threads=1", "--no-report")


def measure(runs_per_task: int, cpus_per_task: int) -> tuple[float, int, str]:
    """(seconds, array tasks, the sweep's tally line) of one packed sweep."""
    with tempfile.TemporaryDirectory(prefix="vgx-packing-") as cwd:
        started = time.perf_counter()
        result = subprocess.run(
            [
                VGX,
                *SWEEP,
                "hydra/launcher=vgx_slurm",
                f"hydra.launcher.runs_per_task={runs_per_task}",
                f"hydra.launcher.cpus_per_task={cpus_per_task}",
                "hydra.sweep.dir=s",
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(result.stderr[-3000:])
        tasks = len(json.loads((Path(cwd) / "s" / ".vgx-slurm.json").read_text())["jobs"])
        tally = result.stdout.strip().splitlines()[-1]
    return seconds, tasks, tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--cpus-per-task", type=int, default=1)
    args = parser.parse_args()
    print("| runs per task | array tasks | wall time (s) | runs per second |")
    print("| ---: | ---: | ---: | ---: |")
    for pack in args.packs:
        seconds, tasks, tally = measure(pack, args.cpus_per_task)
        assert tally.split(": ", 1)[1].startswith("40 done"), tally
        print(f"| {pack} | {tasks} | {seconds:.1f} | {40 / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
