"""model=transformer: pre-LN vs post-LN blocks, what the probe sees, warm-up, Xiong et al. 2020."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_experiments import run_once
from vgx.errors import ConfigError
from vgx.experiments import check_experiment
from vgx.models import build_model
from vgx.optim import make_optimizer, make_schedule
from vgx.probe import GradientProbe
from vgx.validate import check_config


def tiny(make_cfg, *overrides: str):
    return make_cfg(
        "model=transformer", "data=copy", "seq_len=4", "width=16", "heads=2", *overrides
    )


def forward_names(model: torch.nn.Module, x: torch.Tensor) -> list[str]:
    with GradientProbe(model) as probe:
        model(x).sum().backward()
        probe.capture(0, 0.0)
        probe.commit()
        return list(probe.layer_table()["name"])


def test_transformer_maps_every_time_step_to_the_outputs(make_cfg):
    model = build_model(tiny(make_cfg, "depth=2"), n_features=10, n_outputs=8)
    assert model(torch.randn(3, 7, 10)).shape == (3, 7, 8)


def test_probe_lists_attention_projections_and_mlp_layers_in_forward_order_pre_ln(make_cfg):
    model = build_model(tiny(make_cfg, "depth=1", "norm_position=pre"), 10, 8)
    assert forward_names(model, torch.randn(2, 5, 10)) == [
        "embed",
        "blocks.0.attention_norm",
        "blocks.0.attention.query",
        "blocks.0.attention.key",
        "blocks.0.attention.value",
        "blocks.0.attention.output",
        "blocks.0.feed_forward_norm",
        "blocks.0.feed_forward.expand",
        "blocks.0.feed_forward.contract",
        "final_norm",
        "head",
    ]


def test_post_ln_normalises_after_each_residual_add_and_has_no_final_norm(make_cfg):
    model = build_model(tiny(make_cfg, "depth=1", "norm_position=post"), 10, 8)
    names = forward_names(model, torch.randn(2, 5, 10))
    assert names.index("blocks.0.attention.output") < names.index("blocks.0.attention_norm")
    assert "final_norm" not in names
    block_out = model.blocks(model.embed(torch.randn(4, 6, 10)))
    assert block_out.mean(-1).abs().max() < 1e-5  # LayerNorm at init: zero mean per position
    assert block_out.std(-1, unbiased=False).sub(1).abs().max() < 1e-3


def test_pre_ln_block_output_is_not_normalised(make_cfg):
    model = build_model(tiny(make_cfg, "depth=1", "norm_position=pre"), 10, 8)
    block_out = model.blocks(model.embed(torch.randn(4, 6, 10)))
    assert block_out.mean(-1).abs().max() > 1e-3


def test_warmup_ramps_the_learning_rate_linearly_then_holds_it(make_cfg):
    cfg = make_cfg("lr=0.4", "warmup_steps=4")
    optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    schedule = make_schedule(optimizer, cfg)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4], rel=1e-12, abs=0)


def test_no_warmup_keeps_the_learning_rate_constant(make_cfg):
    cfg = make_cfg("lr=0.4")
    optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    schedule = make_schedule(optimizer, cfg)
    for _ in range(3):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == 0.4


def ffn_slope(run) -> float:
    """Decades per block of ‖∂L/∂W₂‖ (the feed-forward output weight) at step 0."""
    layers = run.read_table("layers").merge(pd.read_csv(run.layers_file), on="layer")
    ffn = layers[(layers["step"] == 0) & layers["name"].str.endswith("feed_forward.contract")]
    values = np.log10(ffn.sort_values("layer")["grad_norm"].to_numpy(float))
    return float(np.polyfit(np.arange(len(values)), values, 1)[0])


def test_post_ln_gradient_grows_toward_the_output_faster_than_pre_ln_at_init(make_cfg, tmp_path):
    """Xiong et al. 2020, Thm 1: post-LN's slope over the block index exceeds pre-LN's."""
    slopes = {}
    for position in ("pre", "post"):
        run = run_once(
            make_cfg,
            tmp_path / position,
            "model=transformer",
            "data=copy",
            "seq_len=10",
            "depth=6",
            "width=32",
            "init=xavier_uniform",
            f"norm_position={position}",
        )
        slopes[position] = ffn_slope(run)
    assert slopes["post"] > slopes["pre"] + 0.02


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("heads=3", "width=16 is not a multiple of heads=3"),
        ("norm=batch", "do not apply to model=transformer"),
        ("skip=residual", "do not apply to model=transformer"),
    ],
)
def test_bad_transformer_combinations_are_one_line_config_errors(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        build_model(tiny(make_cfg, override), 10, 8)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("norm_position=middle", "norm_position=middle is not a valid choice; valid: pre, post"),
        ("warmup_steps=-1", "warmup_steps=-1"),
        ("heads=0", "heads=0"),
    ],
)
def test_bad_transformer_values_name_the_value_and_the_valid_ones(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(tiny(make_cfg, override))


def xiong_tables(post_no_warmup_accuracy: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Report-like tables of the xiong2020 sweep: pre-LN falls, post-LN grows over 4 blocks."""
    accuracy = {("pre", 0): 1.0, ("pre", 100): 1.0, ("post", 0): post_no_warmup_accuracy}
    accuracy[("post", 100)] = 1.0
    summary = pd.DataFrame(
        [
            {"run": f"{p}-{w}", "norm_position": p, "warmup_steps": w, "test_accuracy_final": a}
            for (p, w), a in accuracy.items()
        ]
    )
    slope = {"pre": -0.06, "post": 0.03}
    layers = pd.DataFrame(
        [
            {
                "run": f"{p}-{w}",
                "layer": block,
                "name": f"blocks.{block}.feed_forward.contract",
                "kind": "linear",
                "grad_norm_init": 10 ** (slope[p] * block),
            }
            for (p, w) in accuracy
            for block in range(4)
        ]
    )
    return summary, layers


def test_xiong2020_is_shown_when_only_post_ln_without_warmup_fails_to_train():
    verdict = check_experiment("xiong2020", *xiong_tables(post_no_warmup_accuracy=0.13))
    assert verdict.shown, str(verdict)
    assert "pre-LN -0.060, post-LN +0.030" in verdict.evidence


def test_xiong2020_is_not_shown_when_post_ln_trains_without_warmup():
    verdict = check_experiment("xiong2020", *xiong_tables(post_no_warmup_accuracy=1.0))
    assert not verdict.shown
