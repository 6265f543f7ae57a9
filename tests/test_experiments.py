"""Canned experiments: every file runs as a sweep, and tiny versions show the published effect."""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import TINY, run_vgx
from vgx.experiments import EXPERIMENTS, check_experiment, verdict_for_sweep
from vgx.store import RunDir
from vgx.sweep.plan import plan_sweep
from vgx.theory import theory_summary
from vgx.train import execute
from vgx.validate import check_config, experiment_names

EXPERIMENT_DIR = resources.files("vgx.configs") / "experiment"


def run_once(make_cfg, path: Path, *overrides: str) -> RunDir:
    """One probed step of a composed config: the gradients at init."""
    status, _ = execute(make_cfg("steps=1", "threads=1", *overrides), path)
    assert status == "done"
    return RunDir(path)


def summary(run: RunDir) -> dict[str, float]:
    return json.loads(run.summary_file.read_text())


def init_log10_act_grads(run: RunDir) -> np.ndarray:
    """log10 ‖∂L/∂h‖ of the weight layers at step 0, in forward order."""
    layers = run.read_table("layers")
    table = pd.read_csv(run.layers_file)
    at_init = layers[layers["step"] == 0].merge(table, on="layer").sort_values("layer")
    return np.log10(at_init.loc[at_init["kind"] != "norm", "act_grad_norm"].to_numpy(float))


def time_ratio(run: RunDir) -> float:
    """log10(‖∂L/∂h_0‖ / ‖∂L/∂h_T−1‖) of the first recurrent layer at step 0."""
    time = run.read_table("time")
    series = time[(time["step"] == 0) & (time["layer"] == 0)].sort_values("t")
    norms = series["hidden_grad_norm"].to_numpy(float)
    return math.log10(norms[0]) - math.log10(norms[-1])


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_file_composes_and_passes_check_config(make_cfg, name):
    cfg = make_cfg(f"+experiment={name}")
    check_config(cfg)
    assert cfg.experiment == name


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_file_is_a_valid_sweep_of_several_runs(name):
    assert plan_sweep([f"+experiment={name}"]).total >= 2


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_file_declares_its_package_then_cites_its_result(name):
    lines = (EXPERIMENT_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# @package _global_"  # Hydra reads the package only from the first lines
    assert re.match(r"# .*\b(19|20)\d\d\b", lines[1])  # authors and year of the result


def test_every_experiment_file_has_a_check_and_every_check_a_file():
    assert set(experiment_names()) == set(EXPERIMENTS)


def test_deep_sigmoid_mlp_with_default_init_loses_more_than_three_decades(make_cfg, tmp_path):
    run = run_once(make_cfg, tmp_path, "depth=20", "act=sigmoid", "init=default")
    assert summary(run)["decades_lost_act_init"] > 3


def test_deep_relu_mlp_with_he_init_stays_within_one_decade(make_cfg, tmp_path):
    run = run_once(make_cfg, tmp_path, "depth=20", "act=relu", "init=he_normal")
    assert abs(summary(run)["decades_lost_act_init"]) < 1


def test_normalised_init_keeps_tanh_gradients_flatter_than_the_standard_init(make_cfg, tmp_path):
    ratios = [
        summary(run_once(make_cfg, tmp_path / init, "depth=5", "act=tanh", f"init={init}"))
        for init in ("default", "xavier_uniform")
    ]
    standard, normalised = (r["decades_lost_act_init"] for r in ratios)
    assert abs(normalised) < abs(standard) / 2


def test_batch_norm_makes_relu_gradients_grow_toward_the_input(make_cfg, tmp_path):
    run = run_once(make_cfg, tmp_path, "depth=10", "act=relu", "norm=batch")
    assert summary(run)["decades_lost_act_init"] < 0


@pytest.mark.parametrize("init_std", [0.0625, 0.125, 0.5])
def test_tanh_gradient_ratio_follows_mean_field_theory_across_init_scales(
    make_cfg, tmp_path, init_std
):
    overrides = ("depth=20", "width=64", "act=tanh", "init=normal", f"init_std={init_std}")
    cfg = make_cfg(*overrides)
    measured = summary(run_once(make_cfg, tmp_path, *overrides))["decades_lost_act_init"]
    assert measured == pytest.approx(theory_summary(cfg)["predicted_decades_lost_act"], abs=1)


def test_lstm_with_forget_bias_carries_gradient_back_far_better_than_a_tanh_rnn(make_cfg, tmp_path):
    common = ("data=adding", "seq_len=30", "depth=2", "width=16")
    rnn = run_once(make_cfg, tmp_path / "rnn", "model=rnn", *common)
    lstm = run_once(make_cfg, tmp_path / "lstm", "model=lstm", "forget_bias=1.0", *common)
    assert time_ratio(lstm) > time_ratio(rnn) + 2  # orders of magnitude more at t = 0


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_one_layer_recurrent_net_at_init_reports_a_finite_time_ratio(make_cfg, tmp_path, model):
    run = run_once(make_cfg, tmp_path, f"model={model}", "data=adding", "seq_len=50", "depth=1")
    lost = summary(run)["decades_lost_time_init"]
    assert math.isfinite(lost) and lost > 2  # 50 steps at init: many decades lost


@pytest.mark.parametrize(
    ("model", "remedy", "decades"),
    [("lstm", "forget_bias=1.0", 3), ("lstm", "recurrent_init=orthogonal", 2),
     ("rnn", "recurrent_init=orthogonal", 4)],
)  # fmt: skip
def test_remedy_keeps_decades_through_50_steps_at_depth_1(
    make_cfg, tmp_path, model, remedy, decades
):
    common = (f"model={model}", "data=adding", "seq_len=50", "depth=1", "width=32")
    default = time_ratio(run_once(make_cfg, tmp_path / "default", *common))
    remedied = time_ratio(run_once(make_cfg, tmp_path / "remedy", *common, remedy))
    assert remedied >= default + decades


def he2015_summary(xavier_loss: float) -> pd.DataFrame:
    """A he2015 summary table with the published outcome, Xavier's final loss set."""
    config = {"act": "relu", "width": 128, "depth": 30, "model": "mlp", "norm": "none"}
    config |= {"skip": "none", "init_std": 0.05}
    rows = [
        {"run": "he", "init": "he_normal", "train_loss_final": 0.2, "test_accuracy_final": 0.9},
        {"run": "xavier", "init": "xavier_normal", "train_loss_final": xavier_loss},
    ]
    rows[1]["test_accuracy_final"] = 0.9 if xavier_loss < 1 else 0.1
    lost = {"he": (-0.1, -0.2), "xavier": (4.5, -0.3)}  # decades lost: act, weight gradient
    for row in rows:
        row["decades_lost_act_init"], row["decades_lost_grad_init"] = lost[row["run"]]
    return pd.DataFrame([{**config, **row} for row in rows])


def test_a_sweep_that_shows_the_published_result_is_shown():
    verdict = check_experiment("he2015", he2015_summary(xavier_loss=2.30), pd.DataFrame())
    assert verdict.shown


def test_a_sweep_that_contradicts_the_published_result_is_not_shown():
    verdict = check_experiment("he2015", he2015_summary(xavier_loss=0.3), pd.DataFrame())
    assert not verdict.shown
    assert "NOT SHOWN" in str(verdict)


def test_a_missing_run_is_reported_not_raised():
    partial = he2015_summary(xavier_loss=2.30).iloc[:1]
    verdict = check_experiment("he2015", partial, pd.DataFrame())
    assert not verdict.shown
    assert "no run with init=xavier_normal" in verdict.evidence


def test_verdict_for_sweep_judges_the_experiment_named_in_the_runs(make_cfg, tmp_path):
    for init in ("he_normal", "xavier_normal"):
        run_once(
            make_cfg, tmp_path / f"init={init}", "+experiment=he2015", "depth=4", f"init={init}"
        )
    verdict = verdict_for_sweep(tmp_path)
    assert verdict.experiment == "he2015"
    assert verdict.to_dict()["evidence"] == verdict.evidence


def test_verdict_for_sweep_is_none_for_a_sweep_of_no_experiment(make_cfg, tmp_path):
    run_once(make_cfg, tmp_path / "run", "depth=2")
    assert verdict_for_sweep(tmp_path) is None


def test_the_end_of_an_experiment_sweep_prints_and_keeps_its_verdict(tmp_path):
    args = ("sweep", "+experiment=he2015", "depth=3", *TINY, "hydra.sweep.dir=s")
    result = run_vgx(*args, cwd=tmp_path)
    kept = (tmp_path / "s" / "report" / "experiment.txt").read_text()
    assert kept.startswith("he2015: NOT SHOWN") and kept.strip() in result.stdout
