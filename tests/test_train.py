"""The training loop: what a run stores, in the number format it trains in."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vgx.data import batches, load_dataset
from vgx.models import build_model, fit_data
from vgx.runs import read_run_metrics
from vgx.status import DIVERGED, DONE
from vgx.store import RunDir
from vgx.train import execute

FLOAT32_SMALLEST = 1.4e-45  # the smallest float32 subnormal


def first_layer_gradient_by_float64_autograd(cfg) -> float:
    """‖∂L/∂W‖ of the first layer at step 0, recomputed as the loop sets the run up."""
    data = fit_data(cfg.model.name, load_dataset(cfg.data, cfg.seq_len)).to("cpu", torch.float64)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.n_features, data.n_outputs).double()
    generator = torch.Generator().manual_seed(cfg.seed)
    index = next(batches(len(data.x_train), cfg.batch_size, generator))
    data.loss(model(data.x_train[index]), data.y_train[index]).backward()
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    return math.hypot(*first.weight.grad.reshape(-1).tolist())


def test_float64_depth_60_sigmoid_gradients_near_1e_minus_51_are_stored_and_read_back(
    make_cfg, tmp_path
) -> None:
    # PyTorch's default init: the classic cause, whose first-layer gradients sit near 1e-51
    cfg = make_cfg(
        "dtype=float64", "depth=60", "act=sigmoid", "init=default", "steps=1", "threads=1"
    )
    assert execute(cfg, tmp_path) == (DONE, DONE)
    layers = RunDir(tmp_path).read_table("layers")
    stored = layers.loc[(layers["step"] == 0) & (layers["layer"] == 0), "grad_norm"].item()
    expected = first_layer_gradient_by_float64_autograd(cfg)
    assert 0 < expected < 1e-45 < FLOAT32_SMALLEST  # below what a float32 column can hold
    assert stored == pytest.approx(expected, rel=1e-6, abs=0)
    report = read_run_metrics(tmp_path).layers.set_index("layer")
    assert report.loc[0, "grad_norm_init"] == stored  # the report reads what was stored


def test_float64_runs_train_a_float64_model_on_float64_data(make_cfg, tmp_path) -> None:
    cfg = make_cfg("dtype=float64", "steps=2", "width=8", "threads=1")
    assert execute(cfg, tmp_path) == (DONE, DONE)
    layers = RunDir(tmp_path).read_table("layers")
    assert layers["act_mean"].dtype == np.float64 and np.isfinite(layers["act_mean"]).all()


def test_a_divergence_on_an_unprobed_step_stores_that_step_with_nan_activation_columns(
    make_cfg, tmp_path
) -> None:
    cfg = make_cfg(
        "lr=1e6", "init=default", "momentum=0", "probe.every=4", "steps=8", "width=8", "depth=3"
    )
    assert execute(cfg, tmp_path)[0] == DIVERGED
    run = RunDir(tmp_path)
    diverged = run.read_status()["step"]
    assert diverged % 4 != 0  # the case under test: a step the probe does not record
    steps = run.read_table("steps").set_index("step")
    assert steps.loc[diverged, "nonfinite"] > 0
    assert not np.isfinite(steps.loc[diverged, "grad_total_norm"])
    layers = run.read_table("layers")
    at = layers[layers["step"] == diverged]
    assert len(at) == 4  # weights' NaN/Inf counts; the step's count includes the biases
    assert 0 < at["nonfinite"].sum() <= steps.loc[diverged, "nonfinite"]
    assert not np.isfinite(at["grad_norm"]).any()
    assert np.isfinite(at["weight_norm"]).all()
    for column in ("act_grad_norm", "act_mean", "act_std", "zero_fraction", "dead_units"):
        assert at[column].isna().all(), column
