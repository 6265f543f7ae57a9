"""Sweep bookkeeping shared by the front end and the jobs: names, progress log, expected size.

Jobs may run in other processes (joblib) or on other machines (SLURM), so they report progress by
appending one line per finished run to a log in the sweep directory (O_APPEND writes of one short
line are atomic); the front end reads it for the progress bar and the final tally.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from pathlib import Path

PROGRESS_LOG = ".vgx-progress"
SKIPPED = "skipped"  # a run already finished with the same config
MAX_NAME = 120
UNSAFE = re.compile(r"[^A-Za-z0-9=,._+\-\[\]()]")


def safe_name(text: str, empty: str = "base") -> str:
    """A readable, stable file name for a set of overrides (`act=sigmoid,depth=10`)."""
    name = UNSAFE.sub("_", text) or empty
    if len(name) > MAX_NAME:  # keep it readable and unique: a prefix plus a digest of the whole
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME - 11]}-{digest}"
    return name


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
