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
STEP_RECORD = "@steps"  # a line `@steps<TAB>fraction<TAB>run`: how far a running run has got
STEP_RECORDS_PER_RUN = 20  # enough for a bar that moves, few enough to keep the log small


def record_progress(sweep_dir: Path, run_name: str, status: str) -> None:
    """Append `status<TAB>run` to the sweep's progress log (safe from parallel processes)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    line = f"{status}\t{run_name}\n".encode()
    fd = os.open(sweep_dir / PROGRESS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def record_steps(sweep_dir: Path, run_name: str, done: int, total: int) -> None:
    """Note how far a running run has got, at most STEP_RECORDS_PER_RUN times per run."""
    every = max(1, total // STEP_RECORDS_PER_RUN)
    if done % every == 0 and done < total:
        record_progress(sweep_dir, run_name, f"{STEP_RECORD}\t{done / total:.3f}")


def _lines(sweep_dir: Path) -> list[list[str]]:
    try:
        text = (sweep_dir / PROGRESS_LOG).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line.split("\t") for line in text.splitlines() if "\t" in line]


def read_progress(sweep_dir: Path) -> Counter[str]:
    """How many runs of the current sweep ended with each status (skipped ones apart)."""
    return Counter(fields[0] for fields in _lines(sweep_dir) if fields[0] != STEP_RECORD)


def running_fractions(sweep_dir: Path) -> dict[str, float]:
    """The fraction of its steps each run that has not ended yet has done."""
    fractions: dict[str, float] = {}
    ended = set()
    for fields in _lines(sweep_dir):
        if fields[0] == STEP_RECORD and len(fields) == 3:
            fractions[fields[2]] = float(fields[1])
        else:
            ended.add(fields[1])
    return {run: f for run, f in fractions.items() if run not in ended}


def reset_progress(sweep_dir: Path) -> None:
    (sweep_dir / PROGRESS_LOG).unlink(missing_ok=True)
