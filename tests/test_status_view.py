"""`vgx status SWEEP_DIR` from the files alone: counts, slowest, failures, jobs, front end."""

from __future__ import annotations

import json
import os
import socket

import pytest

from tests.helpers import run_vgx
from vgx.errors import VgxError
from vgx.status import DONE, FAILED, INTERRUPTED, PENDING, RUNNING
from vgx.store import RunDir, atomic_write_json
from vgx.sweep.detach import DETACH_FILE
from vgx.sweep.manifest import SLURM_JOBS, write_manifest
from vgx.sweep.status_view import collect, render

NOW = 1_000_000.0


def make_run(sweep, name, status, wall=None, **fields):
    run = RunDir(sweep / name)
    run.write_status(status, **fields)
    if wall is not None:
        run.write_summary({"wall_time_s": wall})
    return run


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """Five runs in the manifest: one done, one failed, one running, one interrupted, one not
    started."""
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    names = ["act=a", "act=b", "act=c", "act=d", "act=e"]
    write_manifest(tmp_path, ["act=a,b,c,d,e"], [([n], n) for n in names])
    make_run(tmp_path, "act=a", DONE, wall=3.0)
    make_run(tmp_path, "act=b", FAILED, wall=1.0, message="worker died: signal 9")
    make_run(tmp_path, "act=d", INTERRUPTED, message="received signal SIGTERM")
    running = make_run(tmp_path, "act=c", RUNNING)
    record = running.read_status()
    atomic_write_json(running.status_file, {**record, "updated": NOW - 42.0})
    return tmp_path


def test_counts_every_status_word_with_pending_from_the_manifest(sweep):
    counts = collect(sweep, now=NOW).counts
    assert counts == {
        "done": 1,
        "running": 1,
        "failed": 1,
        "diverged": 0,
        "invalid": 0,
        "interrupted": 1,
        PENDING: 1,
    }


def test_a_running_run_counts_its_time_since_it_started(sweep):
    running = next(r for r in collect(sweep, now=NOW).runs if r.status == RUNNING)
    assert running.seconds == pytest.approx(42.0, abs=0)


def test_a_running_run_whose_process_is_gone_is_named(sweep):
    owner = {"host": socket.gethostname(), "pid": 2**22 + 7, "token": "t"}
    (sweep / "act=c" / ".vgx-lock").write_text(json.dumps(owner))
    text = render(collect(sweep, now=NOW))
    assert "running, but their process is gone (killed? the sweep again redoes them):\n  act=c" in (
        text
    )


def test_a_running_run_whose_process_lives_is_not_named(sweep):
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "token": "t"}
    (sweep / "act=c" / ".vgx-lock").write_text(json.dumps(owner))
    assert "process is gone" not in render(collect(sweep, now=NOW))


def test_slowest_runs_come_first_with_the_running_one_marked_so_far(sweep):
    text = render(collect(sweep, now=NOW))
    slowest = text.split("slowest:\n")[1].splitlines()[:3]
    assert slowest[0].strip().startswith("42.0 s so far  running")
    assert slowest[1].strip().startswith("3.0 s  done")
    assert slowest[2].strip().startswith("1.0 s  failed")


def test_runs_not_done_are_listed_with_their_messages(sweep):
    text = render(collect(sweep, now=NOW))
    assert "failed      act=b: worker died: signal 9" in text
    assert "interrupted act=d: received signal SIGTERM" in text


def test_slurm_job_ids_come_from_the_runs_status(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "17")
    for task, name in enumerate(["act=a", "act=b"]):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        make_run(tmp_path, name, DONE)
    state = collect(tmp_path, now=NOW)
    assert state.slurm_jobs == {"17_0": ["act=a"], "17_1": ["act=b"]}
    assert "17_1: 1 run" in render(state)


def test_a_slurm_array_lists_its_submitted_tasks(sweep):
    atomic_write_json(sweep / SLURM_JOBS, {"jobs": [f"9_{i}" for i in range(40)]})
    assert "SLURM array: 40 tasks submitted (9_0 … 9_39)" in render(collect(sweep, now=NOW))


def test_a_detached_front_end_reads_alive_while_its_pid_lives(sweep):
    record = {"pid": os.getpid(), "host": socket.gethostname(), "log": "sweep.log"}
    atomic_write_json(sweep / DETACH_FILE, record)
    assert f"front end: alive (pid {os.getpid()}" in render(collect(sweep, now=NOW))


def test_a_detached_front_end_that_vanished_without_an_end_reads_gone(sweep):
    record = {"pid": 2**22 + 7, "host": socket.gethostname(), "log": "sweep.log"}
    atomic_write_json(sweep / DETACH_FILE, record)
    assert "front end: gone without recording an end" in render(collect(sweep, now=NOW))


def test_a_directory_without_runs_or_manifest_is_an_error(tmp_path):
    with pytest.raises(VgxError, match="not a sweep directory"):
        collect(tmp_path)


def test_vgx_status_prints_the_view(sweep):
    result = run_vgx("status", str(sweep), cwd=sweep)
    assert result.returncode == 0, result.stderr
    assert "1 done, 1 running, 1 failed, 0 diverged, 0 invalid, 1 interrupted, 1 pending" in (
        result.stdout
    )
