"""The detail groups' schedule: dense early, 9 steps a decade later, the run's last probed step."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vgx.errors import ConfigError
from vgx.probe import GradientProbe
from vgx.probe.schedule import is_detailed, on_log_grid


def test_the_log_grid_is_steps_0_to_9_then_9_steps_a_decade() -> None:
    grid = [s for s in range(2001) if on_log_grid(s)]
    assert grid == [*range(10), *range(10, 100, 10), *range(100, 1000, 100), 1000, 2000]


def test_detail_every_n_takes_every_nth_step() -> None:
    assert [s for s in range(10) if is_detailed(s, 3)] == [0, 3, 6, 9]


def test_detail_every_must_not_be_negative() -> None:
    with pytest.raises(ConfigError):
        GradientProbe(nn.Linear(2, 2), detail_every=-1)


def run(probe: GradientProbe, model: nn.Module, steps: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(steps):
        if not probe.is_probed(step):
            continue
        probe.start_step(step)
        loss = model(torch.randn(4, 3)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        probe.capture(step, loss)
        optimizer.step()
        probe.commit()


def test_steps_off_the_schedule_have_gradients_and_nan_detail_columns() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with GradientProbe(model, every=5, final_step=63) as probe:
        run(probe, model, 64)
        layers = probe.frames()["layers"]
    detailed = sorted(layers.step[layers.act_mean.notna()].unique().tolist())
    assert detailed == [0, 5, 10, 20, 30, 40, 50, 60]  # 60: the last probed step up to 63
    light = layers[~layers.step.isin(detailed)]
    assert light.grad_norm.gt(0).all() and light.act_grad_norm.gt(0).all()
    assert light[["weight_norm", "update_ratio", "act_std", "saturated"]].isna().all().all()
    assert not math.isnan(layers.update_ratio[layers.step == 60].iloc[0])
