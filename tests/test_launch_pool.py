"""vgx's process pool: jobs run in workers it owns; a lost worker costs one job, never the rest."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tests.processes import alive, wait_for
from vgx.launch import pool as pool_module
from vgx.launch.pool import Job, WorkerPool, run_pack
from vgx.store import RunDir


def test_run_pack_returns_every_jobs_value_in_job_order():
    outcomes = run_pack([Job("builtins:pow", (2, n)) for n in range(6)], workers=2)
    assert [o.value for o in outcomes] == [2**n for n in range(6)]


def test_workers_take_many_jobs_each():
    outcomes = run_pack([Job("tests.launch_jobs:pid_of_worker")] * 6, workers=2)
    assert len({o.value for o in outcomes}) == 2


def test_a_job_that_raises_returns_its_exception_and_the_other_jobs_still_run():
    jobs = [Job("tests.launch_jobs:fail", ("bad value",)), Job("builtins:abs", (-3,))]
    outcomes = run_pack(jobs, workers=1)
    assert isinstance(outcomes[0].error, ValueError) and str(outcomes[0].error) == "bad value"
    assert outcomes[1].value == 3


def test_a_worker_killed_with_sigkill_fails_its_run_and_a_fresh_worker_runs_the_rest(tmp_path):
    jobs = [
        Job("tests.launch_jobs:pid_of_worker"),
        Job("tests.launch_jobs:write_run_then_die", (str(tmp_path / "victim"),)),
        Job("tests.launch_jobs:pid_of_worker"),
    ]
    first, died, after = run_pack(jobs, workers=1)
    assert died.died == "worker died: signal 9"
    assert isinstance(after.value, int) and after.value != first.value  # a fresh worker
    status = RunDir(tmp_path / "victim").read_status()
    assert status["status"] == "failed" and status["message"] == "worker died: signal 9"
    assert status["config_hash"] == "abc"  # what the run recorded is kept


def test_an_interrupt_marks_the_run_of_a_worker_that_does_not_stop_interrupted(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(pool_module, "GRACE_S", 1.0)
    run = RunDir(tmp_path / "stuck")
    with WorkerPool(1) as pool:
        (worker,) = pool.pids()

        def interrupt_when_running() -> None:
            wait_for(lambda: run.exists() and run.read_status()["status"] == "running")
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt_when_running, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            pool.run([Job("tests.launch_jobs:write_run_then_sleep", (str(run.path),))])
        assert pool.pids() == []
    assert not alive(worker)
    status = run.read_status()
    assert status["status"] == "interrupted"
