"""The sweep's progress log, shared by the front end and the jobs.

Jobs may run in other processes (joblib) or on other machines (SLURM), so they report progress by
appending one line per finished run to a log in the sweep directory (O_APPEND writes of one short
line are atomic); the front end reads it for the progress bar and the final tally.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

PROGRESS_LOG = ".vgx-progress"


def record_progress(sweep_dir: Path, run_name: str, status: str) -> None:
    """Append `status<TAB>run` to the sweep's progress log (safe from parallel processes)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    line = f"{status}\t{run_name}\n".encode()
    fd = os.open(sweep_dir / PROGRESS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_progress(sweep_dir: Path) -> Counter[str]:
    """How many runs of the current sweep ended with each status (skipped ones apart)."""
    try:
        lines = (sweep_dir / PROGRESS_LOG).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return Counter()
    return Counter(line.split("\t", 1)[0] for line in lines if "\t" in line)


def reset_progress(sweep_dir: Path) -> None:
    (sweep_dir / PROGRESS_LOG).unlink(missing_ok=True)
