"""vgx_slurm's parts that need no scheduler: packing, the time-limit warning, a stopped pack's
records. (tests/test_slurm.py runs the launcher on a real SLURM.)"""

from __future__ import annotations

from vgx.launch.slurm import VgxSlurmLauncher, packs, record_stop
from vgx.status import DONE, INTERRUPTED
from vgx.store import RunDir
from vgx.sweep.manifest import write_manifest
from vgx.sweep.progress import read_progress
from vgx.sweep.status_view import collect

NAMES = ["act=a", "act=b", "act=c"]


def test_packs_are_consecutive_groups_of_runs_per_task():
    assert packs(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]


def test_the_time_limit_warning_comes_at_most_a_quarter_of_the_limit_early():
    assert VgxSlurmLauncher("f", timeout_min=1).parameters["slurm_signal_delay_s"] == 15
    assert VgxSlurmLauncher("f", timeout_min=60).parameters["slurm_signal_delay_s"] == 60


def stopped_pack(tmp_path, monkeypatch):
    """A pack of three runs stopped during the second: one done, one interrupted, one unstarted."""
    monkeypatch.setenv("VGX_INVOCATION", "inv")
    write_manifest(tmp_path, ["act=a,b,c"], [([n], n) for n in NAMES])
    RunDir(tmp_path / "act=a").write_status(DONE, config_hash="h")
    RunDir(tmp_path / "act=b").write_status(INTERRUPTED, config_hash="h", message="SIGTERM")
    record_stop(tmp_path, [(i, [n]) for i, n in enumerate(NAMES)], "preempted in job 4", 0.0)


def test_a_stopped_packs_unstarted_run_is_tallied_interrupted_and_stays_pending(
    tmp_path, monkeypatch
):
    stopped_pack(tmp_path, monkeypatch)
    assert read_progress(tmp_path, "inv")[INTERRUPTED] == 1
    assert collect(tmp_path).counts["pending"] == 1


def test_a_stopped_packs_interrupted_run_says_what_stopped_it(tmp_path, monkeypatch):
    stopped_pack(tmp_path, monkeypatch)
    record = RunDir(tmp_path / "act=b").read_status()
    assert record["message"] == "preempted in job 4"
    assert record["config_hash"] == "h"
    assert RunDir(tmp_path / "act=a").read_status()["status"] == DONE
