"""The sweep's progress log, shared by the front end and the jobs.

Jobs may run in other processes or on other machines (SLURM), so they report progress by
appending one line per finished run to a log in the sweep directory (O_APPEND writes of one short
line are atomic), and a few step records per running run so that the bar moves while they train.
Each line carries the invocation id of the `vgx sweep` that launched the job: two sweeps on one
directory (a cron job and a person) append to the same log, and each tallies only its own lines,
so no invocation ever deletes another's log.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from vgx.status import DIVERGED, FAILED, SKIPPED

log = logging.getLogger(__name__)

PROGRESS_LOG = ".vgx-progress"
INVOCATION_ENV = "VGX_INVOCATION"  # set by the front end, inherited by every job it launches
STEP_RECORD = "@steps"  # `invocation<TAB>@steps<TAB>fraction<TAB>run`: how far a running run is
STEP_RECORDS_PER_RUN = 20  # enough for a bar that moves, few enough to keep the log small


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


def record_steps(sweep_dir: Path, run_name: str, done: int, total: int) -> None:
    """Note how far a running run has got, at most STEP_RECORDS_PER_RUN times per run."""
    every = max(1, total // STEP_RECORDS_PER_RUN)
    if done % every == 0 and done < total:
        record_progress(sweep_dir, run_name, f"{STEP_RECORD}\t{done / total:.3f}")


def _fields(sweep_dir: Path) -> list[list[str]]:
    try:
        lines = (sweep_dir / PROGRESS_LOG).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [line.split("\t") for line in lines]


def _is_end(fields: list[str]) -> bool:
    return len(fields) == 3  # the older two-field format and four-field step records are not


def _is_step(fields: list[str]) -> bool:
    return len(fields) == 4 and fields[1] == STEP_RECORD


def read_progress(sweep_dir: Path, invocation: str | None = None) -> Counter[str]:
    """How many runs of one invocation (default: the latest to end a run) ended with each word."""
    ends = [f for f in _fields(sweep_dir) if _is_end(f)]
    if invocation is None and ends:
        invocation = ends[-1][0]
    return Counter(status for inv, status, _ in ends if inv == invocation)


def running_fractions(sweep_dir: Path, invocation: str | None = None) -> dict[str, float]:
    """The fraction of its steps each run of one invocation (default: the latest to write a
    line) that has not ended yet has done."""
    fields = [f for f in _fields(sweep_dir) if _is_end(f) or _is_step(f)]
    if invocation is None and fields:
        invocation = fields[-1][0]
    fractions: dict[str, float] = {}
    ended = set()
    for f in fields:
        if f[0] != invocation:
            continue
        if _is_step(f):
            fractions[f[3]] = float(f[2])
        else:
            ended.add(f[2])
    return {run: fraction for run, fraction in fractions.items() if run not in ended}


class PolledBar:
    """A tqdm bar redrawn by a thread every `interval` seconds while its block runs (the work
    happens in other processes, or in a call that cannot report progress itself)."""

    def __init__(self, bar: tqdm, interval: float) -> None:
        self.bar, self.interval = bar, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def refresh(self) -> None:
        self.bar.refresh()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def __enter__(self) -> PolledBar:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.refresh()
        self.bar.close()


class SweepProgress(PolledBar):
    """A sweep-level bar fed by the progress log: runs finished plus the finished fraction of
    running ones (so it moves while the first runs train), failures, ETA. Runs skipped on a
    resume leave the total instead of counting as done, so the rate and ETA are the real ones."""

    def __init__(self, sweep_dir: Path, total: int, invocation: str, interval: float = 0.5) -> None:
        bar = tqdm(
            total=total,
            desc="sweep",
            unit="run",
            position=0,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n:.1f}/{total} [{elapsed}<{remaining}{postfix}]",
        )
        super().__init__(bar, interval)
        self.sweep_dir, self.invocation, self.total = sweep_dir, invocation, total

    def refresh(self) -> None:
        counts = read_progress(self.sweep_dir, self.invocation)
        skipped = counts[SKIPPED]
        running = sum(running_fractions(self.sweep_dir, self.invocation).values())
        self.bar.total = max(self.total - skipped, 0)
        self.bar.n = sum(counts.values()) - skipped + running
        self.bar.set_postfix(
            failed=counts[FAILED], diverged=counts[DIVERGED], skipped=skipped, refresh=False
        )
        self.bar.refresh()


class ReportProgress(PolledBar):
    """What the report phase is doing and for how long (it reads every run and draws plots)."""

    def __init__(self, runs: int, interval: float = 0.5) -> None:
        bar = tqdm(
            total=None,
            desc=f"report: reading {runs} runs, drawing plots",
            bar_format="{desc} [{elapsed}]",
            position=0,
        )
        super().__init__(bar, interval)
