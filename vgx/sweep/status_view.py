"""`vgx status SWEEP_DIR`: how far a sweep is, from its files alone.

Reads only what every launcher leaves in the sweep directory (each run's status.json and
summary.json, the manifest, the detached front end's record), so it works from any shell while the
sweep runs, locally or on SLURM, and never touches a run.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgx.errors import VgxError
from vgx.run.lock import LEASE_FILE, LOCK_FILE, pid_alive
from vgx.status import (
    CORRUPT,
    DIVERGED,
    DONE,
    FAILED,
    INTERRUPTED,
    INVALID,
    PENDING,
    RUNNING,
)
from vgx.store import RunDir, find_runs, read_json
from vgx.sweep.detach import front_end
from vgx.sweep.manifest import SLURM_JOBS, read_manifest

# The order the counts print in; `corrupt` appears only when a status file cannot be read.
COUNTED = (DONE, RUNNING, FAILED, DIVERGED, INVALID, INTERRUPTED, PENDING)
PROBLEMS = (FAILED, DIVERGED, INVALID, INTERRUPTED, CORRUPT)  # listed with their messages
SLOWEST = 5
JOBS_SHOWN = 10  # SLURM tasks listed one per line; the rest are counted


@dataclass
class RunState:
    """One run as its files say: status, message, seconds (trained, or running so far), job."""

    name: str
    status: str
    message: str = ""
    seconds: float | None = None
    slurm_job: str | None = None
    owner_gone: bool = False  # `running`, but its owner's pid is gone on this host (killed)


@dataclass
class SweepState:
    """Everything `vgx status` prints, gathered from the sweep directory's files."""

    sweep_dir: Path
    runs: list[RunState]
    counts: dict[str, int]
    front_end: dict[str, Any] | None = None
    slurm_jobs: dict[str, list[str]] = field(default_factory=dict)  # job id -> its runs
    submitted: list[str] = field(default_factory=list)  # the array's tasks (vgx_slurm)


def run_state(run: RunDir, root: Path, now: float) -> RunState:
    record = run.read_status()
    status = record["status"]
    seconds = None
    if status == RUNNING and isinstance(record.get("updated"), (int, float)):
        seconds = now - record["updated"]  # written when the run started
    elif run.summary_file.exists():
        try:
            wall = run.read_summary().get("wall_time_s")
        except VgxError:
            wall = None
        seconds = float(wall) if isinstance(wall, (int, float)) else None
    name = str(run.path.relative_to(root)) if run.path != root else run.path.name
    gone = status == RUNNING and owner_gone(run)
    message = str(record.get("message") or "")
    return RunState(name, status, message, seconds, record.get("slurm_job"), gone)


def owner_gone(run: RunDir) -> bool:
    """Whether the process that holds (or last held) the run's lock is gone from this host.

    Read from the lock file's owner record only: taking the lock, even for a moment, could make
    its real owner see the run as busy."""
    for name in (LOCK_FILE, LEASE_FILE):
        try:
            owner = json.loads((run.path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(owner, dict) and owner.get("host") == socket.gethostname():
            pid = owner.get("pid")
            return isinstance(pid, int) and not pid_alive(pid)
        return False
    return False


def pending_count(sweep_dir: Path, runs: list[RunState]) -> int:
    """Manifest entries without a status.json (by name; by number when names are unknown)."""
    manifest = read_manifest(sweep_dir)
    names = [name for entry in manifest if isinstance(name := entry.get("dir"), str)]
    if len(names) == len(manifest):
        return sum(not (sweep_dir / name / "status.json").exists() for name in names)
    return max(0, len(manifest) - len(runs))


def collect(sweep_dir: Path, now: float | None = None) -> SweepState:
    """The sweep's state; a directory that is no sweep (nothing to read) is a VgxError."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise VgxError(f"no such directory: {sweep_dir}")
    now = time.time() if now is None else now
    runs = [run_state(run, sweep_dir, now) for run in find_runs(sweep_dir)]
    detached = front_end(sweep_dir)
    counts = {word: 0 for word in COUNTED}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    counts[PENDING] = pending_count(sweep_dir, runs)
    if not runs and not counts[PENDING] and detached is None:
        raise VgxError(f"{sweep_dir} holds no runs and no manifest: not a sweep directory")
    jobs: dict[str, list[str]] = {}
    for run in runs:
        if run.slurm_job:
            jobs.setdefault(run.slurm_job, []).append(run.name)
    submitted_file = sweep_dir / SLURM_JOBS
    submitted = read_json(submitted_file).get("jobs", []) if submitted_file.exists() else []
    return SweepState(sweep_dir, runs, counts, detached, jobs, [str(j) for j in submitted])


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _front_end_line(record: dict[str, Any] | None) -> str:
    if record is None:
        return "front end: not detached"
    state = record["state"]
    where = f"pid {record.get('pid')} on {record.get('host')}"
    if state == "ended":
        return f"front end: ended with exit code {record.get('exit_code')} ({where})"
    if state == "gone":
        return f"front end: gone without recording an end, killed? ({where}); log {record['log']}"
    return f"front end: {state} ({where}); log {record.get('log')}"


def render(state: SweepState) -> str:
    """The text `vgx status` prints."""
    total = sum(state.counts.values())
    shown = [w for w in (*COUNTED, CORRUPT) if w in COUNTED or state.counts.get(w)]
    lines = [
        f"sweep {state.sweep_dir}: {total} run{'s' if total != 1 else ''}",
        "  " + ", ".join(f"{state.counts.get(w, 0)} {w}" for w in shown),
        _front_end_line(state.front_end),
    ]
    timed = sorted(
        ((r.seconds, r) for r in state.runs if r.seconds is not None), key=lambda t: -t[0]
    )
    if timed:
        lines.append("slowest:")
        for seconds, run in timed[:SLOWEST]:
            so_far = " so far" if run.status == RUNNING else ""
            lines.append(f"  {_duration(seconds)}{so_far}  {run.status:<11} {run.name}")
    gone = [r for r in state.runs if r.owner_gone]
    if gone:
        lines.append("running, but their process is gone (killed? the sweep again redoes them):")
        lines += [f"  {r.name}" for r in gone]
    problems = [r for r in state.runs if r.status in PROBLEMS]
    if problems:
        lines.append("not done:")
        lines += [f"  {r.status:<11} {r.name}: {r.message or '(no message)'}" for r in problems]
    if state.submitted:
        lines.append(
            f"SLURM array: {len(state.submitted)} tasks submitted ({_span(state.submitted)})"
        )
    if state.slurm_jobs:
        lines.append(f"SLURM jobs ({len(state.slurm_jobs)}):")
        ordered = sorted(state.slurm_jobs.items())
        for job, names in ordered[:JOBS_SHOWN]:
            lines.append(f"  {job}: {len(names)} run{'s' if len(names) != 1 else ''}")
        if len(ordered) > JOBS_SHOWN:
            lines.append(f"  and {len(ordered) - JOBS_SHOWN} more")
    return "\n".join(lines)


def _span(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]} … {ids[-1]}"
