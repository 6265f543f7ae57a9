"""Every choice builds, trains, and really does what its name says."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vgx.data import load_dataset
from vgx.errors import ConfigError
from vgx.models import (
    ACTIVATIONS,
    INITS,
    MODELS,
    NORMS,
    SKIPS,
    Residual,
    build_model,
    fit_data,
    resolve_init,
)
from vgx.models.blocks import Shortcut
from vgx.models.init import initialise


def build(cfg):
    data = fit_data(cfg.model.name, load_dataset(cfg.data, cfg.seq_len))
    torch.manual_seed(cfg.seed)
    return build_model(cfg, data.n_features, data.n_outputs, data.image_shape), data


def loss_drop(cfg, steps: int = 40) -> tuple[float, float]:
    """Train with Adam on a fixed batch; return the first and last loss."""
    model, data = build(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = data.x_train[:64], data.y_train[:64]
    losses = []
    for _ in range(steps):
        loss = data.loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


EASY = ("data=synthetic", "data.n_features=16", "data.class_sep=2.0", "width=16", "depth=2")


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_every_activation_builds_and_its_loss_falls(make_cfg, act):
    first, last = loss_drop(make_cfg(*EASY, f"act={act}"))
    assert last < 0.8 * first


@pytest.mark.parametrize("init", list(INITS))
def test_every_init_builds_and_its_loss_falls(make_cfg, init):
    first, last = loss_drop(make_cfg(*EASY, f"init={init}", "init_std=0.3"))
    assert last < 0.8 * first


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("skip", list(SKIPS))
def test_every_norm_and_skip_builds_and_its_loss_falls(make_cfg, norm, skip):
    first, last = loss_drop(make_cfg(*EASY, f"norm={norm}", f"skip={skip}", "depth=3"))
    assert last < 0.8 * first


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_family_builds_and_its_loss_falls(make_cfg, model):
    # depth=1: a CNN of depth 2 has 14 weight layers, too deep for PyTorch's default init
    first, last = loss_drop(make_cfg(f"model={model}", "depth=1", "width=16"), steps=60)
    assert last < 0.8 * first


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_recurrent_models_learn_the_adding_problem_setup(make_cfg, model):
    first, last = loss_drop(make_cfg(f"model={model}", "data=adding", "seq_len=5", "width=16"), 80)
    assert last < first


def weight_of(make_cfg, init: str, fan_in: int = 400, fan_out: int = 300, std: float = 0.05):
    layer = nn.Linear(fan_in, fan_out)
    torch.manual_seed(0)
    initialise(layer, resolve_init(init, "relu"), std)
    return layer.weight.detach()


def test_he_normal_init_has_std_sqrt_2_over_fan_in(make_cfg):
    assert weight_of(make_cfg, "he_normal").std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)


def test_he_uniform_init_has_std_sqrt_2_over_fan_in(make_cfg):
    assert weight_of(make_cfg, "he_uniform").std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)


def test_xavier_normal_init_has_std_sqrt_2_over_fan_in_plus_fan_out(make_cfg):
    expected = math.sqrt(2 / 700)
    assert weight_of(make_cfg, "xavier_normal").std() == pytest.approx(expected, rel=0.02)


def test_xavier_uniform_init_is_bounded_by_sqrt_6_over_fans(make_cfg):
    weight, bound = weight_of(make_cfg, "xavier_uniform"), math.sqrt(6 / 700)
    assert weight.abs().max() <= bound
    assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_lecun_normal_init_has_std_sqrt_1_over_fan_in(make_cfg):
    assert weight_of(make_cfg, "lecun_normal").std() == pytest.approx(math.sqrt(1 / 400), rel=0.02)


def test_normal_init_has_the_configured_std(make_cfg):
    assert weight_of(make_cfg, "normal", std=0.3).std() == pytest.approx(0.3, rel=0.02)


def test_orthogonal_init_gives_orthonormal_rows(make_cfg):
    weight = weight_of(make_cfg, "orthogonal", fan_in=400, fan_out=300)
    assert torch.allclose(weight @ weight.T, torch.eye(300), atol=1e-4)


def test_default_init_is_pytorch_uniform_within_one_over_sqrt_fan_in(make_cfg):
    weight = weight_of(make_cfg, "default")
    assert weight.abs().max() <= 1 / math.sqrt(400)
    assert weight.std() == pytest.approx(1 / math.sqrt(3 * 400), rel=0.02)


def test_non_default_inits_zero_the_biases(make_cfg):
    model, _ = build(make_cfg("init=he_normal"))
    assert all(not m.bias.any() for m in model.modules() if isinstance(m, nn.Linear))


def test_init_reaches_every_layer_of_the_model(make_cfg):
    model, _ = build(make_cfg("init=normal", "init_std=0.5", "depth=3", "width=200"))
    for layer in [m for m in model.modules() if isinstance(m, nn.Linear)][1:]:
        assert layer.weight.detach().std() == pytest.approx(0.5, rel=0.1)


def test_lstm_forget_bias_sets_the_forget_gate_of_every_layer(make_cfg):
    model, _ = build(make_cfg("model=lstm", "forget_bias=1.0", "depth=2", "width=8"))
    for lstm in [m for m in model.modules() if isinstance(m, nn.LSTM)]:
        total = lstm.bias_ih_l0 + lstm.bias_hh_l0
        assert torch.equal(total[8:16], torch.ones(8))


def test_orthogonal_recurrent_init_makes_hidden_weights_orthogonal(make_cfg):
    model, _ = build(make_cfg("model=rnn", "recurrent_init=orthogonal", "width=8"))
    rnn = next(m for m in model.modules() if isinstance(m, nn.RNN))
    assert torch.allclose(rnn.weight_hh_l0 @ rnn.weight_hh_l0.T, torch.eye(8), atol=1e-5)


def test_residual_wrapper_adds_its_input():
    block = nn.Linear(4, 4)
    x = torch.randn(3, 4)
    assert torch.allclose(Residual(block)(x), x + block(x))


def names(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_children()]


def test_skip_residual_is_the_basic_block_weight_norm_act_weight_norm_add_act(make_cfg):
    model, _ = build(make_cfg("skip=residual", "depth=3", "norm=batch"))
    block = model.blocks[1]
    assert names(block) == ["branch", "shortcut", "post"]
    assert names(block.branch) == ["linear1", "norm1", "act1", "linear2", "norm2"]
    assert isinstance(block.post, nn.ReLU)  # the activation after the addition


def test_skip_preact_is_norm_act_weight_twice_with_nothing_after_the_addition(make_cfg):
    model, _ = build(make_cfg("skip=preact", "depth=3", "norm=batch"))
    block = model.blocks[1]
    assert names(block.branch) == ["norm1", "act1", "linear1", "norm2", "act2", "linear2"]
    assert isinstance(block.post, nn.Identity)
    assert names(model.blocks[0]) == ["linear"]  # the stem: its norm → act open the first block
    assert names(model.final) == ["norm", "act"]  # and close the last (He et al. 2016, ECCV)


@pytest.mark.parametrize("skip", ["residual", "preact"])
def test_a_block_with_a_silent_branch_passes_its_input_through_the_shortcut(make_cfg, skip):
    model, _ = build(make_cfg(f"skip={skip}", "depth=2", "act=tanh"))
    block = model.blocks[1]
    nn.init.zeros_(block.branch.linear2.weight)
    nn.init.zeros_(block.branch.linear2.bias)
    x = torch.randn(5, 64)
    expected = torch.tanh(x) if skip == "residual" else x
    assert torch.equal(block(x), expected)


def test_a_stage_shortcut_subsamples_and_pads_channels_with_zeros():
    shortcut = Shortcut(4, 8, stride=2)
    x = torch.randn(2, 4, 5, 3)
    out = shortcut(x)
    assert torch.equal(out[:, :4], x[:, :, ::2, ::2]) and out.shape == (2, 8, 3, 2)
    assert not out[:, 4:].any()


def test_skip_none_mlp_blocks_are_one_layer_and_residual_ones_two(make_cfg):
    linears = {
        skip: sum(
            isinstance(m, nn.Linear)
            for m in build(make_cfg(f"skip={skip}", "depth=4"))[0].modules()
        )
        for skip in ("none", "residual", "preact")
    }
    assert linears == {"none": 4 + 1, "residual": 1 + 2 * 3 + 1, "preact": 1 + 2 * 3 + 1}


@pytest.mark.parametrize("skip", list(SKIPS))
def test_cnn_is_6n_plus_2_layers_in_three_stages_that_halve_the_map(make_cfg, skip):
    model, _ = build(make_cfg("model=cnn", f"skip={skip}", "depth=3", "width=4"))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == 6 * 3 + 2  # plus the linear head
    assert [c.out_channels for c in convs[1::6]] == [4, 8, 16]
    assert [c.stride for c in convs if c.stride != (1, 1)] == [(2, 2), (2, 2)]
    shortcuts = sum(isinstance(m, Residual) for m in model.modules())
    assert shortcuts == (0 if skip == "none" else 9)


@pytest.mark.parametrize(
    ("model", "norm", "expected"),
    [
        ("mlp", "batch", nn.BatchNorm1d),
        ("mlp", "layer", nn.LayerNorm),
        ("cnn", "batch", nn.BatchNorm2d),
        ("cnn", "layer", nn.GroupNorm),
        ("gru", "layer", nn.LayerNorm),
    ],
)
def test_norm_places_its_layer_after_every_weight_layer(make_cfg, model, norm, expected):
    net, _ = build(make_cfg(f"model={model}", f"norm={norm}", "depth=3", "width=8"))
    weights = sum(isinstance(m, nn.Linear | nn.Conv2d | nn.RNNBase) for m in net.modules())
    assert sum(isinstance(m, expected) for m in net.modules()) == weights - 1  # not the head


def test_depth_counts_hidden_layers(make_cfg):
    net, _ = build(make_cfg("depth=7"))
    assert sum(isinstance(m, nn.Linear) for m in net.modules()) == 7 + 1  # plus the head


def test_rnn_uses_the_configured_nonlinearity(make_cfg):
    net, _ = build(make_cfg("model=rnn", "act=relu"))
    assert next(m for m in net.modules() if isinstance(m, nn.RNN)).nonlinearity == "relu"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model=lstm", "act=relu"), "act=relu does not apply to model=lstm"),
        (("model=rnn", "act=sigmoid"), "act=sigmoid does not apply to model=rnn"),
        (("model=gru", "norm=batch"), "norm=batch does not apply to recurrent models"),
        (("model=mlp", "data=adding"), "data=adding does not fit model=mlp"),
        (("model=cnn", "data=synthetic", "data.n_features=10"), "model=cnn needs images"),
        (("model=lstm", "skip=preact"), "skip=preact does not apply to model=lstm"),
    ],
)
def test_invalid_combinations_raise_one_clear_config_error(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build(make_cfg(*overrides))


def test_vgx_list_says_what_depth_counts_and_what_each_skip_builds(capsys):
    from vgx.cli import cmd_list

    cmd_list([])
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "blocks per stage" in lines["depth"] and "stem" in lines["depth"]
    assert "basic block" in lines["skip"] and "preact: x + F(x)" in lines["skip"]


def auto_weight(make_cfg, act: str, model: str = "mlp", layer: type = nn.Linear) -> torch.Tensor:
    """The hidden-to-hidden `layer` weight (256 → 256) of a model built with init=auto."""
    net, _ = build(make_cfg(f"model={model}", f"act={act}", "init=auto", "width=256", "depth=2"))
    hidden = (m for m in net.modules() if isinstance(m, layer) and m.weight.shape[:2] == (256, 256))
    return next(hidden).weight


def hidden_fan_in(weight: torch.Tensor) -> int:
    return weight[0].numel()


def test_auto_init_is_the_default(make_cfg):
    assert make_cfg().init == "auto"


def test_auto_init_gives_relu_he_normal_std(make_cfg):
    weight = auto_weight(make_cfg, "relu")
    expected = math.sqrt(2 / hidden_fan_in(weight))
    assert weight.std().item() == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize(("act", "slope"), [("leaky_relu", 0.01), ("prelu", 0.25)])
def test_auto_init_gives_rectifiers_the_gain_of_their_negative_slope(make_cfg, act, slope):
    weight = auto_weight(make_cfg, act)
    expected = math.sqrt(2 / (1 + slope**2) / hidden_fan_in(weight))
    assert weight.std().item() == pytest.approx(expected, rel=0.02)


def test_auto_init_gives_selu_lecun_normal_std(make_cfg):
    weight = auto_weight(make_cfg, "selu")
    assert weight.std().item() == pytest.approx(math.sqrt(1 / hidden_fan_in(weight)), rel=0.02)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softsign"])
def test_auto_init_gives_saturating_units_glorot_uniform(make_cfg, act):
    weight = auto_weight(make_cfg, act)
    bound = math.sqrt(6 / (hidden_fan_in(weight) + weight.shape[0]))
    assert weight.abs().max().item() <= bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_auto_init_applies_to_conv_layers_with_their_receptive_field(make_cfg):
    weight = auto_weight(make_cfg, "relu", model="cnn", layer=nn.Conv2d)
    assert hidden_fan_in(weight) == 256 * 9
    assert weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.02)


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_auto_init_keeps_pytorch_init_for_the_rnn_family(make_cfg, model):
    args = (f"model={model}", "data=adding", "act=tanh", "width=16")
    auto, _ = build(make_cfg(*args, "init=auto"))
    default, _ = build(make_cfg(*args, "init=default"))
    for (name, a), (_, d) in zip(auto.named_parameters(), default.named_parameters(), strict=True):
        assert torch.equal(a, d), name
