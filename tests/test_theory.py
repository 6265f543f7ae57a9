"""Mean-field theory: known critical points, quadrature, and agreement with measured networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from vgx.data import load_dataset
from vgx.models import ACTIVATIONS, INITS, build_model, resolve_init
from vgx.theory import (
    THEORY_KEYS,
    activation_and_slope,
    chi1,
    fit_slope,
    fixed_point,
    gaussian_moments,
    predicted_block_growth,
    predicted_log10_grad_profile,
    predicted_profile,
    predicted_slope,
    theory_summary,
)

# Slopes are decades per layer. A wide net's per-layer log10 norm ratio fluctuates by about
# 0.43·sqrt(2/(width·batch)) ≈ 0.003 and finite-width corrections are O(1/width); over 5 seeds
# the fitted slopes stayed within 0.005 of the prediction, so 0.01 is a 2x margin.
SLOPE_TOLERANCE = 0.01


def test_relu_is_critical_at_he_variance():
    assert chi1("relu", 2.0, 0.0) == pytest.approx(1.0, abs=1e-9)


def test_tanh_is_critical_at_unit_variance_with_fixed_point_zero():
    assert fixed_point("tanh", 1.0, 0.0) == 0.0
    assert chi1("tanh", 1.0, 0.0) == pytest.approx(1.0, abs=1e-6)


def test_sigmoid_with_default_init_vanishes():
    sigma_w2, sigma_b2 = INITS["default"].variance(64, 64, 0.0)
    assert chi1("sigmoid", sigma_w2, sigma_b2) < 0.1


def test_tanh_beyond_the_critical_variance_explodes():
    assert chi1("tanh", 2.0, 0.0) > 1.0


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_quadrature_matches_monte_carlo_for_every_activation(act):
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    phi, slope = activation_and_slope(act, math.sqrt(0.7) * z)
    quad_phi, quad_slope = gaussian_moments(act, 0.7)
    # Monte-Carlo standard error of a mean of 4e5 samples of O(1) values: about 2e-3.
    assert quad_phi[0] == pytest.approx(float(phi.square().mean()), rel=0.02, abs=1e-3)
    assert quad_slope[0] == pytest.approx(float(slope.square().mean()), rel=0.02, abs=1e-3)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_auto_init_resolves_to_finite_variances_for_every_activation(act):
    sigma_w2, sigma_b2 = resolve_init("auto", act).variance(64, 64, 0.0)
    assert math.isfinite(sigma_w2) and math.isfinite(sigma_b2) and sigma_w2 > 0


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "prelu", "tanh", "softsign"])
def test_auto_init_puts_designed_activations_at_the_critical_point(act):
    sigma_w2, sigma_b2 = resolve_init("auto", act).variance(64, 64, 0.0)
    assert chi1(act, sigma_w2, sigma_b2) == pytest.approx(1.0, abs=1e-3)


def test_fit_slope_is_negative_when_gradients_shrink_toward_the_input():
    forward_order = [-3.0, -2.0, -1.0, 0.0]  # first layer three decades below the output
    assert fit_slope(forward_order) == pytest.approx(-1.0)


def test_profile_has_one_value_per_layer_and_is_zero_at_the_output():
    profile = predicted_log10_grad_profile("tanh", 0.5, 0.0, depth=6, q0=1e-6)
    assert len(profile) == 7
    assert profile[-1] == 0.0
    assert profile[0] == pytest.approx(6 * math.log10(0.5) / 2, abs=1e-3)  # tanh'(0)² = 1


def measured_slope(act: str, sigma_w2: float, width: int, depth: int, batch: int = 64) -> float:
    """Fitted slope of log10‖∂L/∂h^l‖ in a random Gaussian MLP fed N(0, 1) inputs (q0 = 1)."""
    torch.manual_seed(0)
    h = torch.randn(batch, width)
    pre_activations = []
    for layer in range(depth + 1):
        z = h @ (torch.randn(width, width) * math.sqrt(sigma_w2 / width)).T
        z = z.requires_grad_() if layer == 0 else z
        z.retain_grad()
        pre_activations.append(z)
        h = ACTIVATIONS[act]()(z) if layer < depth else z
    (h * torch.randn_like(h)).sum().backward()  # a random direction at the output
    return fit_slope([math.log10(float(z.grad.norm())) for z in pre_activations])


@pytest.mark.parametrize(("act", "sigma_w2"), [("tanh", 0.5), ("tanh", 2.0), ("relu", 1.5)])
def test_wide_random_network_slope_matches_prediction(act, sigma_w2):
    predicted = fit_slope(predicted_log10_grad_profile(act, sigma_w2, 0.0, depth=20, q0=1.0))
    measured = measured_slope(act, sigma_w2, width=512, depth=20)
    assert measured == pytest.approx(predicted, abs=SLOPE_TOLERANCE)


def test_predicted_slope_of_a_config_matches_the_model_it_builds(make_cfg):
    cfg = make_cfg("depth=8", "width=256", "act=tanh", "init=default")
    data = load_dataset(cfg.data, cfg.seq_len)
    torch.manual_seed(0)
    model = build_model(cfg, data.n_features, data.n_outputs)
    outputs = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(lambda m, i, out: outputs.append(out) or out.retain_grad())
    data.loss(model(data.x_train[:256]), data.y_train[:256]).backward()
    measured = fit_slope([math.log10(float(out.grad.norm())) for out in outputs])
    assert measured == pytest.approx(predicted_slope(cfg), abs=SLOPE_TOLERANCE)


def test_a_flat_summary_row_and_a_composed_config_give_the_same_theory(make_cfg):
    cfg = make_cfg("depth=5", "act=sigmoid", "init=default")
    row = {"act": "sigmoid", "init": "default", "init_std": 0.05, "width": 64, "depth": 5}
    row |= {"model": "mlp", "norm": "none", "skip": "none", "data": "digits"}
    assert theory_summary(row) == pytest.approx(theory_summary(cfg))
    assert set(theory_summary(row)) == set(THEORY_KEYS)


def test_a_configs_profile_has_one_value_per_linear_layer_ending_at_the_output(make_cfg):
    profile = predicted_profile(make_cfg("depth=5", "act=sigmoid"))
    assert len(profile) == 6  # 5 hidden blocks and the head, as in layers.csv
    assert profile[-1] == 0.0 and profile[0] < -3


@pytest.mark.parametrize("override", ["norm=batch", "model=cnn", "model=lstm"])
def test_theory_abstains_outside_mlps_without_normalisation(make_cfg, override):
    cfg = make_cfg(override, "act=tanh")
    assert predicted_slope(cfg) is None and predicted_profile(cfg) is None
    assert all(np.isnan(value) for value in theory_summary(cfg).values())


def outputs_of(modules) -> list[torch.Tensor]:
    """The list each module's output lands in during the forward pass, gradients retained."""
    outputs: list[torch.Tensor] = []
    for module in modules:
        module.register_forward_hook(lambda m, i, out: outputs.append(out) or out.retain_grad())
    return outputs


def residual_gradients(cfg, seeds: int = 2, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """log10‖∂L/∂h‖ of every Linear output relative to the head's, and each block's growth of
    the squared stream gradient (input over output), by autograd in float64, mean over seeds."""
    data = load_dataset(cfg.data, cfg.seq_len)
    profiles, growths = [], []
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = build_model(cfg, data.n_features, data.n_outputs).double()
        linear = outputs_of(m for m in model.modules() if isinstance(m, nn.Linear))
        stream = outputs_of(model.blocks)  # blocks[0] is the stem: the first block's input
        x, y = data.x_train[:batch].double(), data.y_train[:batch]
        data.loss(model(x), y).backward()
        norms = np.log10([float(out.grad.norm()) for out in linear])
        profiles.append(norms - norms[-1])
        squares = np.array([float(out.grad.square().sum()) for out in stream])
        growths.append(squares[:-1] / squares[1:])
    return np.mean(profiles, axis=0), np.exp(np.mean(np.log(growths), axis=0))


# Measured over 3 seeds at width 512, depth 8 (7 blocks): the largest gap between the predicted
# and measured log10 profile was 0.016 decades (basic block, ReLU, He init) and 0.011 (preact).
RESIDUAL_CASES = [
    ("residual", "relu", "he_normal"),
    ("residual", "relu", "default"),
    ("residual", "tanh", "default"),
    ("residual", "sigmoid", "default"),
    ("preact", "relu", "he_normal"),
    ("preact", "tanh", "default"),
]


@pytest.mark.parametrize(("skip", "act", "init"), RESIDUAL_CASES)
def test_residual_mlp_gradient_profile_at_init_matches_autograd(make_cfg, skip, act, init):
    cfg = make_cfg(f"skip={skip}", f"act={act}", f"init={init}", "depth=8", "width=512")
    measured, _ = residual_gradients(cfg)
    assert np.abs(measured - predicted_profile(cfg)).max() < 0.05


@pytest.mark.parametrize(("skip", "act", "init"), RESIDUAL_CASES)
def test_each_blocks_predicted_growth_matches_the_measured_growth(make_cfg, skip, act, init):
    cfg = make_cfg(f"skip={skip}", f"act={act}", f"init={init}", "depth=8", "width=512")
    _, measured = residual_gradients(cfg)
    assert measured == pytest.approx(predicted_block_growth(cfg), rel=0.1)


def test_preact_relu_block_doubles_the_squared_gradient_at_he_init(make_cfg):
    cfg = make_cfg("skip=preact", "act=relu", "init=he_normal", "depth=6")
    assert predicted_block_growth(cfg) == pytest.approx([2.0] * 5, rel=1e-6)  # 1 + χ·χ, χ = 1


def test_basic_sigmoid_block_vanishes_where_the_preact_block_does_not(make_cfg):
    basic, preact = (
        predicted_block_growth(make_cfg(f"skip={skip}", "act=sigmoid", "depth=6"))
        for skip in ("residual", "preact")
    )
    assert max(basic) < 0.1 and min(preact) > 0.9  # sigmoid' ≤ 1/4 sits on the basic identity path
