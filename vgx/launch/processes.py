"""Processes seen from /proc, and stopping every process the front end started.

vgx's own pool stops its workers itself; a launcher vgx does not own does not: on SIGTERM of the
front end, submitit_local left both of its jobs training, unowned (each run stayed `running` and a
resume trained it a second time beside the orphan). So the front end, on its way out of an
interrupted sweep, passes SIGTERM to every descendant (the run records `interrupted`), waits up to
GRACE_S and kills what is left. The tests find a sweep's workers by pid with the same functions.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from vgx.launch.pool import GRACE_S

POLL_S = 0.1


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie (dead, not yet reaped) counts as gone."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _parents() -> dict[int, int]:
    """Every live process with its parent's pid."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] not in ("Z", "X"):
                parents[int(entry.name)] = stat[1]
    return parents


def children(pid: int) -> set[int]:
    return {child for child, parent in _parents().items() if parent == pid}


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`: its children, their children, and so on."""
    parents = _parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def stop_descendants(grace_s: float = GRACE_S) -> set[int]:
    """SIGTERM every descendant of this process, SIGKILL those alive after `grace_s`; the pids."""
    pids = descendants(os.getpid())
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for pid in descendants(os.getpid()):
        _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
