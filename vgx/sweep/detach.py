"""`vgx sweep ... --detach`: the front end leaves the terminal, so a logout does not end the sweep.

The sweep's front end (Hydra's sweeper and launcher: under SLURM it waits for every job) is
started again as `python -m vgx.sweep.detached SWEEP_DIR ARGS...` in a new session (no controlling
terminal: a closed SSH session's SIGHUP does not reach it), with its output in the sweep
directory's log. Its pid, host and, once it ends, its exit code go to `.vgx-detach.json`, which
`vgx status` reads to say whether the front end is alive.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vgx.run.lock import pid_alive
from vgx.store import atomic_write_json, read_json

DETACH_FILE = ".vgx-detach.json"
DETACH_LOG = "sweep.log"


def detach(sweep_dir: Path, sweep_args: list[str]) -> dict[str, Any]:
    """Start `vgx sweep SWEEP_ARGS` detached; returns what was recorded (pid, host, log)."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log_path = sweep_dir / DETACH_LOG
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "vgx.sweep.detached", str(sweep_dir), *sweep_args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = {
        "pid": child.pid,
        "host": socket.gethostname(),
        "log": str(log_path),
        "started": time.time(),
        "args": sweep_args,
    }
    atomic_write_json(sweep_dir / DETACH_FILE, record)
    return record


def front_end(sweep_dir: Path) -> dict[str, Any] | None:
    """The detached front end's record plus `state`: alive, ended (with `exit_code`), or gone
    (its pid is no more and it recorded no end: killed); None when the sweep was not detached."""
    path = Path(sweep_dir) / DETACH_FILE
    if not path.exists():
        return None
    record = read_json(path)
    if "exit_code" in record:
        state = "ended"
    elif record.get("host") != socket.gethostname():
        state = "on another host"
    else:
        pid = record.get("pid")
        state = "alive" if isinstance(pid, int) and pid_alive(pid) else "gone"
    return {**record, "state": state}
