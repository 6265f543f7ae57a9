"""The sweep's progress log, shared by the front end and the jobs.

Jobs may run in other processes or on other machines (SLURM), so they report progress by
appending one line per finished run to a log in the sweep directory (O_APPEND writes of one short
line are atomic). Each line carries the invocation id of the `vgx sweep` that launched the job:
two sweeps on one directory (a cron job and a person) append to the same log, and each tallies
only its own lines, so no invocation ever deletes another's log.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)

PROGRESS_LOG = ".vgx-progress"
INVOCATION_ENV = "VGX_INVOCATION"  # set by the front end, inherited by every job it launches


def new_invocation() -> str:
    """A fresh id for this `vgx sweep` invocation, exported to the jobs it launches."""
    invocation = uuid.uuid4().hex[:12]
    os.environ[INVOCATION_ENV] = invocation
    return invocation


def record_progress(sweep_dir: Path, run_name: str, status: str) -> None:
    """Append `invocation<TAB>status<TAB>run` to the sweep's progress log.

    A full disk or a read-only sweep directory must not turn a finished run into a crash of the
    job: the run's own status.json already says how it ended, so a lost line is only logged.
    """
    invocation = os.environ.get(INVOCATION_ENV, "-")
    line = f"{invocation}\t{status}\t{run_name}\n".encode()
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(sweep_dir / PROGRESS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as err:
        log.error("cannot record progress of %s in %s: %s", run_name, sweep_dir, err)


def read_progress(sweep_dir: Path, invocation: str | None = None) -> Counter[str]:
    """How many runs of one invocation (default: the latest to write) ended with each word."""
    try:
        lines = (sweep_dir / PROGRESS_LOG).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return Counter()
    fields = [line.split("\t") for line in lines]
    fields = [f for f in fields if len(f) == 3]  # a line of the older two-field format: ignored
    if invocation is None and fields:
        invocation = fields[-1][0]
    return Counter(status for inv, status, _ in fields if inv == invocation)
