"""One writer per run: the run lock, held by real processes that are started and killed by pid."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TINY, run_vgx, start_vgx
from tests.test_overnight import wait_for
from vgx.run.lock import LEASE_FILE, RunLock
from vgx.store import RunDir, read_metrics

HOLD = """
import sys, time
from vgx.run.lock import RunLock
lock = RunLock(sys.argv[1], mode=sys.argv[2], heartbeat_s=0.2, stale_s=2.0)
assert lock.acquire()
print(lock.kind, flush=True)
time.sleep(600)
"""


def hold_lock(run_dir: Path, mode: str) -> subprocess.Popen[str]:
    """A process that owns `run_dir` and sleeps; it says which kind of lock it holds."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir), mode], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == mode
    return holder


@pytest.mark.parametrize("mode", ["flock", "lease"])
def test_run_owned_by_a_live_process_is_busy_and_free_once_that_process_is_killed(tmp_path, mode):
    holder = hold_lock(tmp_path, mode)
    try:
        lock = RunLock(tmp_path, mode=mode)
        assert not lock.acquire()
        assert lock.owner["pid"] == holder.pid
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with RunLock(tmp_path, mode=mode) as lock:
        assert lock.acquire() and lock.kind == mode


def test_lease_of_a_live_owner_stays_fresh_through_its_heartbeat(tmp_path):
    holder = hold_lock(tmp_path, "lease")
    try:
        time.sleep(3.0)  # longer than stale_s=2: only the heartbeat keeps it
        assert not RunLock(tmp_path, mode="lease", stale_s=2.0).acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()


def test_lease_held_on_another_host_is_taken_over_only_once_its_heartbeat_is_stale(tmp_path):
    lease = tmp_path / LEASE_FILE
    lease.write_text(json.dumps({"host": "other-node", "pid": 1, "token": "theirs"}))
    assert not RunLock(tmp_path, mode="lease", stale_s=60).acquire()  # pid 1 here says nothing
    old = time.time() - 120
    os.utime(lease, (old, old))
    lock = RunLock(tmp_path, mode="lease", stale_s=60)
    assert lock.acquire()
    assert json.loads(lease.read_text())["host"] == socket.gethostname()
    lock.release()
    assert not lease.exists()


def test_auto_lock_falls_back_to_a_lease_where_flock_is_not_supported(tmp_path, monkeypatch):
    def no_flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with RunLock(tmp_path, mode="auto") as lock:
        assert lock.acquire() and lock.kind == "lease"
        assert not RunLock(tmp_path, mode="auto").acquire()


LONG = ("steps=1000000", "width=8", "threads=1", "progress=false", "probe.chunk_rows=20")


@pytest.mark.parametrize("mode", ["flock", "lease"])
def test_second_sweep_on_same_directory_skips_runs_busy_elsewhere(tmp_path, monkeypatch, mode):
    monkeypatch.setenv("VGX_LOCK", mode)
    args = ("sweep", "seed=0", *LONG, "hydra.sweep.dir=s", "--no-report")
    first = start_vgx(*args, cwd=tmp_path)
    try:
        run = RunDir(tmp_path / "s" / "probe.chunk_rows=20,seed=0,steps=1000000,width=8")
        wait_for(lambda: len(list(run.metrics_dir.glob("layers-*.parquet"))) >= 2)
        second = run_vgx(*args, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert "0 done, 0 failed" in second.stdout and "1 busy elsewhere" in second.stdout
        chunks = len(list(run.metrics_dir.glob("layers-*.parquet")))
        assert run.read_status()["status"] == "running"
        steps = read_metrics(run.metrics_dir, "steps")["step"]
        assert steps.is_unique and chunks >= 2  # the first sweep's chunks were not cleared
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=120)
    assert run.read_status()["status"] == "interrupted"


def test_vgx_run_into_a_run_directory_busy_elsewhere_stops_in_one_line(tmp_path):
    holder = hold_lock(tmp_path / "r", "flock")
    try:
        result = run_vgx("run", *TINY, "hydra.run.dir=r", cwd=tmp_path)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "vgx: error: r is busy: another live vgx process is training it"
    ]
    assert not RunDir(tmp_path / "r").exists()
