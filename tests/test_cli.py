"""The `vgx` command as a user types it: runs, sweeps, help, and one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.helpers import TINY, run_vgx
from vgx.store import find_runs


def test_sweep_makes_one_finished_run_directory_per_combination(tmp_path):
    result = run_vgx("sweep", "depth=2,3", "act=sigmoid,relu", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "report written to" in result.stdout
    runs = find_runs(tmp_path / "outputs" / "sweeps")
    names = sorted(run.path.name for run in runs)
    assert names == sorted(
        f"act={a},depth={d},steps=5,width=8" for a in ("sigmoid", "relu") for d in (2, 3)
    )
    assert all(run.read_status()["status"] == "done" for run in runs)
    assert all(run.summary_file.exists() and run.layers_file.exists() for run in runs)


def test_run_writes_config_status_layers_metrics_and_summary(tmp_path):
    result = run_vgx("run", "depth=3", *TINY, "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "r"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps_done"] == 5 and summary["steps_per_s"] > 0
    assert {"test_accuracy_final", "wall_time_s", "train_loss_final"} <= summary.keys()
    assert len(pd.read_csv(run / "layers.csv")) == 3 + 1
    env = json.loads((run / "env.json").read_text())
    assert {"vgx", "torch", "python", "git_commit"} <= env.keys()


def test_same_seed_gives_bit_identical_metrics_on_cpu(tmp_path):
    for name in ("a", "b"):
        result = run_vgx("run", "act=tanh", *TINY, f"hydra.run.dir={name}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    one, two = (pd.read_parquet(tmp_path / n / "metrics" / "layers-00000.parquet") for n in "ab")
    pd.testing.assert_frame_equal(one, two, check_exact=True)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run", "act=sigmod"), "act=sigmod is not a valid choice; valid: sigmoid, tanh"),
        (("sweep", "depth=0,2"), "depth=0 is out of range; valid: ≥ 1"),
        (("run", "width=-4"), "width=-4 is out of range"),
        (("run", "steps=0"), "steps=0 is out of range"),
        (("run", "lr=0"), "lr=0 is out of range; valid: > 0"),
        (("run", "depth=2,3"), "depth=2,3 is a sweep; vgx run takes one value per key"),
        (("sweep", "dept=3"), "unknown key 'dept'"),
        (("report", "no/such/dir"), "no such directory: no/such/dir"),
        (("diagnose", "no/such/dir"), "no such directory: no/such/dir"),
        (("compare", "only/one"), "at least two sweep directories"),
        (("frobnicate",), "unknown command 'frobnicate'; valid: run, sweep"),
        (("sweep", "act=glob(*xyz)"), "act=glob(*xyz) matches no value; valid: sigmoid"),
        (("sweep", "depth=range(5,2)"), "the sweep would start 0 runs"),
    ],
)
def test_bad_input_gets_one_line_exit_code_2_and_no_traceback(tmp_path, args, expected):
    result = run_vgx(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_invalid_combination_in_a_run_names_the_value_and_exits_2_writing_nothing(tmp_path):
    result = run_vgx("run", "model=lstm", "act=relu", *TINY, "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 2
    assert "act=relu does not apply to model=lstm" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_invalid_combination_in_a_sweep_is_recorded_and_the_others_go_on(tmp_path):
    result = run_vgx("sweep", "model=mlp,lstm", "act=relu", *TINY, "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    statuses = {r.path.name: r.read_status()["status"] for r in find_runs(tmp_path / "outputs")}
    assert sorted(statuses.values()) == ["done", "invalid"]
    assert "1 done" in result.stdout and "1 invalid" in result.stdout


@pytest.mark.parametrize(
    "command", ["run", "sweep", "report", "compare", "diagnose", "export", "list"]
)
def test_every_command_has_help(tmp_path, command):
    result = run_vgx(command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and f"usage: vgx {command}" in result.stdout


def test_list_prints_every_choice_of_every_key(tmp_path):
    out = run_vgx("list", cwd=tmp_path).stdout
    for word in ("softsign", "lecun_normal", "residual", "gru", "adding", "layer"):
        assert word in out


def test_hydra_cfg_flag_passes_through_and_runs_nothing(tmp_path):
    result = run_vgx("run", "depth=7", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0 and "depth: 7" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_sweep_cfg_job_prints_the_config_of_every_run_and_runs_nothing(tmp_path):
    result = run_vgx("sweep", "--cfg", "job", "depth=2,3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "# run 1/2: depth=2" in result.stdout and "# run 2/2: depth=3" in result.stdout
    assert "depth: 2" in result.stdout and "depth: 3" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_sweep_cfg_job_expands_the_values_an_experiment_file_sweeps(tmp_path):
    result = run_vgx("sweep", "--cfg", "job", "+experiment=he2015", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "# run 1/2: init=he_normal" in result.stdout
    assert "# run 2/2: init=xavier_normal" in result.stdout
    inits = [line.split(": ")[1] for line in result.stdout.splitlines() if line.startswith("init:")]
    assert inits == ["he_normal", "xavier_normal"]


def test_sweep_cfg_hydra_shows_the_launcher_the_sweep_was_given(tmp_path):
    result = run_vgx("sweep", "--cfg", "hydra", "depth=2,3", "hydra/launcher=slurm", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("_target_: hydra_plugins.vgx_launchers.vgx_slurm.") == 2


def test_glob_over_a_registry_key_sweeps_the_names_it_matches(tmp_path):
    result = run_vgx("sweep", "--cfg", "job", "act=glob(*elu)", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    acts = [line.split(": ")[1] for line in result.stdout.splitlines() if line.startswith("act:")]
    assert acts == ["relu", "leaky_relu", "prelu", "elu", "selu", "gelu"]


def test_run_writes_its_report_and_prints_the_verdict(tmp_path):
    result = run_vgx("run", "depth=2", *TINY, "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "report" / "summary.csv").exists()
    assert "verdict:" in result.stdout and "(this run)" in result.stdout


def test_report_of_a_run_directory_works(tmp_path):
    run_vgx("run", "depth=2", *TINY, "hydra.run.dir=r", "--no-report", cwd=tmp_path)
    assert not (tmp_path / "r" / "report").exists()
    result = run_vgx("report", "r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "report" / "index.html").exists()
