"""A parallel sweep on the default launcher, attacked the way nights go wrong: kills and signals
sent to the front end or to one worker by pid; the outcome is read from the run directories."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import start_vgx
from tests.processes import alive, children, descendants, wait_for
from vgx.store import find_runs

LONG_RUNS = ("width=8", "threads=1", "progress=false", "hydra.sweep.dir=s", "--no-report")


@pytest.fixture
def leftovers():
    """Pids to kill after the test whatever happened: a failed test must not leave a sweep
    training steps=1000000 on a shared box (old launchers orphaned exactly such workers)."""
    pids: set[int] = set()
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def start_sweep(tmp_path: Path, leftovers: set[int], *args: str):
    front = start_vgx("sweep", *args, *LONG_RUNS, cwd=tmp_path)
    leftovers.add(front.pid)
    wait_for(lambda: running(tmp_path / "s") == 2)
    leftovers.update(descendants(front.pid))
    return front


def statuses(sweep: Path) -> list[str]:
    return [run.read_status()["status"] for run in find_runs(sweep)]


def running(sweep: Path) -> int:
    return statuses(sweep).count("running")


def test_sigkill_of_the_front_end_leaves_no_worker_alive(tmp_path, leftovers):
    front = start_sweep(tmp_path, leftovers, "seed=0,1,2,3", "steps=1000000")
    workers = descendants(front.pid)
    assert workers
    front.kill()
    front.wait()
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)]


def test_sigkill_of_one_worker_fails_its_run_only_and_the_sweep_tallies_and_exits_1(
    tmp_path, leftovers
):
    front = start_sweep(tmp_path, leftovers, "seed=0,1,2,3", "steps=3000")
    os.kill(min(children(front.pid)), signal.SIGKILL)  # a worker, not a git it started
    stdout, stderr = front.communicate(timeout=600)
    assert front.returncode == 1, stderr[-2000:]
    assert "3 done, 1 failed" in stdout
    runs = find_runs(tmp_path / "s")
    failed = [run.read_status() for run in runs if run.read_status()["status"] == "failed"]
    assert [f["message"] for f in failed] == ["worker died: signal 9"]
    assert sorted(statuses(tmp_path / "s")) == ["done", "done", "done", "failed"]


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, True)],
    ids=["SIGTERM", "SIGHUP", "SIGINT-to-the-terminal-group"],
)
def test_a_stop_signal_ends_every_run_in_flight_interrupted_and_exits_130(
    tmp_path, leftovers, signum, to_group
):
    front = start_sweep(tmp_path, leftovers, "seed=0,1,2", "steps=1000000")
    workers = descendants(front.pid)
    if to_group:  # Ctrl-C: the terminal signals the whole foreground process group
        os.killpg(front.pid, signum)
    else:  # kill PID, a closed SSH session: the front end alone
        os.kill(front.pid, signum)
    _, stderr = front.communicate(timeout=120)
    assert front.returncode == 130
    assert "Traceback" not in stderr and "resume" in stderr
    assert statuses(tmp_path / "s") == ["interrupted", "interrupted"]
    assert not [pid for pid in workers if alive(pid)]


def test_sigterm_of_the_front_end_stops_a_foreign_launchers_jobs_and_marks_them_interrupted(
    tmp_path, leftovers
):
    front = start_sweep(
        tmp_path, leftovers, "seed=0,1", "steps=1000000", "hydra/launcher=submitit_local"
    )
    jobs = descendants(front.pid)
    os.kill(front.pid, signal.SIGTERM)  # submitit_local itself would leave both jobs training
    _, stderr = front.communicate(timeout=120)
    assert front.returncode == 130, stderr[-2000:]
    assert statuses(tmp_path / "s") == ["interrupted", "interrupted"]
    assert not [pid for pid in jobs if alive(pid)]
