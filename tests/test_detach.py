"""`vgx sweep ... --detach`: the front end runs on in its own session; `vgx status` tracks it."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from tests.helpers import TINY, run_vgx
from vgx.run.lock import pid_alive
from vgx.sweep.detach import DETACH_FILE, DETACH_LOG

SWEEP = ("sweep", "act=sigmoid,relu", *TINY, "--no-report")


def detached_pid(stdout: str) -> int:
    found = re.search(r"sweep detached: pid (\d+)", stdout)
    assert found, stdout
    return int(found.group(1))


def wait_for_end(sweep_dir, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = json.loads((sweep_dir / DETACH_FILE).read_text())
        if "exit_code" in record:
            return record
        time.sleep(0.2)
    raise AssertionError("the detached front end did not end")


@pytest.fixture(scope="module")
def detached(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("detached")
    result = run_vgx(*SWEEP, "hydra.sweep.dir=s", "--detach", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pid = detached_pid(result.stdout)
    yield tmp_path / "s", pid
    if pid_alive(pid):  # the test failed before the sweep ended: do not leave it behind
        os.killpg(pid, 9)


def test_detach_returns_at_once_and_the_front_end_leads_its_own_session(detached):
    sweep_dir, pid = detached
    if pid_alive(pid):
        assert os.getsid(pid) == pid
    assert (sweep_dir / DETACH_FILE).exists()


def test_the_detached_sweep_runs_every_run_and_logs_its_tally(detached):
    sweep_dir, _ = detached
    assert wait_for_end(sweep_dir)["exit_code"] == 0
    assert "2 done" in (sweep_dir / DETACH_LOG).read_text()


def test_vgx_status_says_when_the_detached_front_end_ended(detached):
    sweep_dir, _ = detached
    wait_for_end(sweep_dir)
    shown = run_vgx("status", str(sweep_dir), cwd=sweep_dir).stdout
    assert "front end: ended with exit code 0" in shown
    assert "2 done" in shown
