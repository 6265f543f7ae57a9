"""The same command finds its runs again: execution-only keys and quoting change no name."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_module

from tests.helpers import run_vgx
from vgx.config import EXECUTION_KEYS
from vgx.sweep.plan import plan_sweep

SMALL = ("steps=5", "width=8", "--no-report")


def test_the_run_names_exclude_exactly_the_execution_keys_of_the_config_hash():
    with initialize_config_module("vgx.configs", version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert list(cfg.hydra.job.config.override_dirname.exclude_keys) == list(EXECUTION_KEYS)


@pytest.mark.parametrize("extra", [("threads=1",), ("progress=false",), ("logger=tensorboard",)])
def test_an_execution_only_key_does_not_change_the_default_sweep_directory(extra):
    assert plan_sweep(["depth=2,3", *extra]).default_dir == plan_sweep(["depth=2,3"]).default_dir


def test_quoting_does_not_change_the_default_sweep_directory():
    quoted = plan_sweep(["act=\"relu\",'tanh'", "init='he_normal'"]).default_dir
    assert quoted == plan_sweep(["act=relu,tanh", "init=he_normal"]).default_dir


def test_a_resumed_sweep_with_quotes_and_execution_keys_skips_every_run_done(tmp_path):
    first = run_vgx("sweep", "act=relu,tanh", *SMALL, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_vgx("sweep", "act=\"relu\",'tanh'", "threads=1", *SMALL, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 done" in again.stdout and "2 skipped" in again.stdout
    assert len(list((tmp_path / "outputs" / "sweeps").iterdir())) == 1


def test_vgx_run_again_finds_its_run_and_skips_it_when_done(tmp_path):
    first = run_vgx("run", "depth=2", *SMALL, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_vgx("run", "depth=2", "progress=false", *SMALL, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.startswith("skipped: outputs/runs/depth=2,steps=5,width=8 is already done")
    assert [p.name for p in (tmp_path / "outputs" / "runs").iterdir()] == [
        "depth=2,steps=5,width=8"
    ]


def test_vgx_run_again_redoes_its_interrupted_run_in_the_same_directory(tmp_path):
    first = run_vgx("run", "depth=2", *SMALL, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    status_file = tmp_path / "outputs" / "runs" / "depth=2,steps=5,width=8" / "status.json"
    status = json.loads(status_file.read_text())
    status_file.write_text(json.dumps({**status, "status": "interrupted"}))
    again = run_vgx("run", "depth=2", *SMALL, cwd=tmp_path)
    assert again.stdout.startswith("done: outputs/runs/depth=2,steps=5,width=8")
    assert json.loads(status_file.read_text())["status"] == "done"
