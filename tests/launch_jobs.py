"""Jobs for the process pool's tests: they run inside pool workers, imported by name."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from vgx.launch.pool import claim
from vgx.store import RunDir


def pid_of_worker() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def write_run_then_die(run_dir: str) -> None:
    """Claim a run, mark it running as vgx.train does, then die as the OOM killer kills."""
    claim(Path(run_dir))
    RunDir(Path(run_dir)).write_status("running", config_hash="abc")
    os.kill(os.getpid(), signal.SIGKILL)


def write_run_then_sleep(run_dir: str) -> None:
    """Claim a run and stay in it, ignoring SIGTERM: a worker stuck in a long kernel."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    claim(Path(run_dir))
    RunDir(Path(run_dir)).write_status("running")
    time.sleep(3600)
