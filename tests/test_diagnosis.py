"""diagnose: flags vanishing, exploding, non-finite, saturated and dead layers; fits remedies."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from vgx.diagnosis import (
    DEAD_UNITS,
    EXPLODING,
    NONFINITE,
    SATURATION,
    VANISHING,
    Architecture,
    diagnose,
    diagnose_runs,
    main_text,
    remedies_for,
)
from vgx.models import build_model
from vgx.train import execute


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(64, 64, generator=generator), torch.randint(
        0, 10, (64,), generator=generator
    )


def mlp(make_cfg, *overrides: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(make_cfg(*overrides), n_features=64, n_outputs=10)


def remedy_keys(diagnosis) -> set[str]:
    return {f"{r.key}={r.value}" for r in diagnosis.remedies}


def test_flags_a_deep_relu_mlp_with_default_init_as_vanishing(make_cfg, batch):
    model = mlp(make_cfg, "depth=20", "act=relu", "init=default")
    diagnosis = diagnose(model, batch, F.cross_entropy)
    assert VANISHING in diagnosis.problems
    assert diagnosis.span < -2
    assert "init=he_normal" in remedy_keys(diagnosis)


def test_flags_vanishing_that_flat_weight_gradients_hide(make_cfg, batch):
    model = mlp(make_cfg, "depth=30", "act=relu", "init=xavier_normal")
    diagnosis = diagnose(model, batch, F.cross_entropy)
    assert abs(diagnosis.weight_span) < 1  # ‖∂L/∂W‖ of the first and last layer look alike
    assert VANISHING in diagnosis.problems
    assert any("hides the vanishing" in note for note in diagnosis.notes)


def test_passes_a_healthy_relu_mlp_with_he_init(make_cfg, batch):
    diagnosis = diagnose(
        mlp(make_cfg, "depth=8", "act=relu", "init=he_normal"), batch, F.cross_entropy
    )
    assert diagnosis.healthy
    assert diagnosis.remedies == []


def test_flags_exploding_gradients_and_suggests_clipping(make_cfg, batch):
    model = mlp(make_cfg, "depth=20", "act=tanh", "init=normal", "init_std=0.5")
    diagnosis = diagnose(model, batch, F.cross_entropy)
    assert EXPLODING in diagnosis.problems
    assert "clip=1.0" in remedy_keys(diagnosis)


def test_flags_non_finite_gradients(make_cfg, batch):
    model = mlp(make_cfg, "depth=3")
    with torch.no_grad():
        model.blocks[1].linear.weight[0, 0] = float("inf")
    assert NONFINITE in diagnose(model, batch, F.cross_entropy).problems


def test_flags_saturated_sigmoid_units(make_cfg, batch):
    model = mlp(make_cfg, "depth=4", "act=sigmoid", "init=normal", "init_std=2.0")
    diagnosis = diagnose(model, batch, F.cross_entropy)
    assert SATURATION in diagnosis.problems
    assert "act=relu" in remedy_keys(diagnosis)


def test_flags_dead_relu_units_and_suggests_a_leaky_activation(make_cfg, batch):
    model = mlp(make_cfg, "depth=4", "act=relu")
    with torch.no_grad():
        for block in model.blocks:
            block.linear.bias.fill_(-5.0)  # every pre-activation negative
    diagnosis = diagnose(model, batch, F.cross_entropy)
    assert DEAD_UNITS in diagnosis.problems
    assert "act=leaky_relu" in remedy_keys(diagnosis)


def test_flags_vanishing_through_time_in_a_tanh_rnn_and_suggests_gated_units(make_cfg):
    torch.manual_seed(0)
    model = build_model(make_cfg("model=rnn", "depth=2", "width=16"), n_features=2, n_outputs=1)
    inputs, targets = torch.randn(16, 50, 2), torch.randn(16)
    diagnosis = diagnose(model, (inputs, targets), lambda out, y: F.mse_loss(out[:, -1, 0], y))
    assert diagnosis.time_span < -2
    assert VANISHING in diagnosis.problems
    assert {"model=lstm", "recurrent_init=orthogonal"} <= remedy_keys(diagnosis)


def test_one_layer_tanh_rnn_with_a_loss_on_the_last_of_50_steps_is_vanishing(make_cfg):
    # h_0 reaches the loss through the recurrence: its gradient is tiny, not absent
    torch.manual_seed(0)
    model = build_model(make_cfg("model=rnn", "depth=1", "width=16"), n_features=2, n_outputs=1)
    inputs, targets = torch.randn(16, 50, 2), torch.randn(16)
    diagnosis = diagnose(model, (inputs, targets), lambda out, y: F.mse_loss(out[:, -1, 0], y))
    assert diagnosis.time_span < -2
    assert VANISHING in diagnosis.problems


def test_leaves_out_remedies_the_run_already_applies():
    lstm = Architecture(saturating=True, recurrent=frozenset({"lstm"}))
    assert [r.key for r in remedies_for([VANISHING], lstm)] == ["forget_bias"]
    assert remedies_for([VANISHING], lstm, {"forget_bias": 1.0}) == []


def test_leaves_the_models_gradients_as_they_were(make_cfg, batch):
    model = mlp(make_cfg, "depth=3")
    marker = torch.full_like(model.head.weight, 7.0)
    model.head.weight.grad = marker
    diagnose(model, batch, F.cross_entropy)
    assert model.head.weight.grad is marker
    assert model.blocks[0].linear.weight.grad is None


def test_report_names_problem_numbers_and_citations_and_dict_is_json(make_cfg, batch):
    model = mlp(make_cfg, "depth=20", "act=relu", "init=default")
    diagnosis = diagnose(model, batch, F.cross_entropy)
    text = str(diagnosis)
    assert "VANISHING" in text and "decades" in text and "He et al. 2015" in text
    assert json.loads(json.dumps(diagnosis.to_dict()))["problems"] == diagnosis.problems


def sweep(make_cfg, root, *runs: tuple[str, ...]) -> None:
    for overrides in runs:
        cfg = make_cfg("steps=40", "threads=1", "probe.every=20", *overrides)
        assert execute(cfg, root / ",".join(overrides))[0] == "done"


def test_diagnose_runs_ranks_the_remedy_the_sweep_varied_by_its_outcome(make_cfg, tmp_path):
    sweep(make_cfg, tmp_path, ("depth=10", "init=default"), ("depth=10", "init=he_normal"))
    report = diagnose_runs(tmp_path)
    ranking = {r.key: r for r in report.rankings}
    assert list(ranking) == ["init"]  # the only key that varied
    assert ranking["init"].values["value"].tolist() == ["he_normal", "default"]
    default = next(run for run in report.runs if run.label == "init=default")
    assert VANISHING in default.init.problems


def test_diagnose_runs_reads_a_single_run_directory(make_cfg, tmp_path):
    sweep(make_cfg, tmp_path, ("depth=2",))
    report = diagnose_runs(tmp_path / "depth=2")
    assert len(report.runs) == 1 and report.rankings == []
    assert "1 runs in" in main_text(tmp_path / "depth=2")


def test_a_relu_run_at_init_auto_is_not_told_to_use_he_init():
    remedies = remedies_for(
        [VANISHING], Architecture(relu_family=True), {"act": "relu", "init": "auto"}
    )
    assert "init=he_normal" not in {f"{r.key}={r.value}" for r in remedies}
