"""The sweep's manifest (written before launch) and its per-invocation progress log."""

from __future__ import annotations

import time

from tests.helpers import TINY, start_vgx
from vgx.store import find_runs
from vgx.sweep.manifest import read_manifest
from vgx.sweep.progress import INVOCATION_ENV, read_progress, record_progress


def test_sweep_writes_every_runs_overrides_and_directory_before_the_first_run_starts(tmp_path):
    args = ("sweep", "depth=2,3", *TINY, "hydra.sweep.dir=s", "--no-report")
    process = start_vgx(*args, cwd=tmp_path)
    sweep = tmp_path / "s"
    while not (sweep / "manifest.json").exists() and process.poll() is None:
        time.sleep(0.02)
    manifest = read_manifest(sweep)
    started = [r.path.name for r in find_runs(sweep)]
    process.communicate(timeout=240)
    assert process.returncode == 0
    assert started == []  # pending = all of the manifest when it appeared
    assert sorted(run["dir"] for run in manifest) == sorted(r.path.name for r in find_runs(sweep))
    assert [o for o in manifest[0]["overrides"]][:3] == ["depth=2", "steps=5", "width=8"]


def test_a_directory_without_a_manifest_has_no_runs_in_it(tmp_path):
    assert read_manifest(tmp_path) == []


def test_each_invocation_tallies_only_its_own_lines_of_a_shared_progress_log(tmp_path, monkeypatch):
    monkeypatch.setenv(INVOCATION_ENV, "first")
    record_progress(tmp_path, "a", "done")
    monkeypatch.setenv(INVOCATION_ENV, "second")
    record_progress(tmp_path, "a", "busy elsewhere")
    record_progress(tmp_path, "b", "done")
    assert read_progress(tmp_path, "first") == {"done": 1}
    assert read_progress(tmp_path, "second") == {"done": 1, "busy elsewhere": 1}
    assert read_progress(tmp_path) == read_progress(tmp_path, "second")  # the latest by default
