"""The probe's numbers at the sizes and magnitudes where a float32 or plain float64 sum fails.

References are independent float64 computations of the same tensors (a float64 norm of the
float32 gradient and of W_after − W_before, or Python's scaled math.hypot for float64 values);
abs=0 so that a 0 never passes for a tiny value.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vgx.probe import GradientProbe


def hypot(tensor: torch.Tensor) -> float:
    return math.hypot(*tensor.detach().reshape(-1).tolist())


def test_a_linear_4096_by_4096_grad_norm_and_update_ratio_are_within_1e_minus_6() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4096, 4096)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(8, 4096)
    with GradientProbe(model, activations=False, time=False) as probe:
        loss = model(x).square().mean()
        loss.backward()
        probe.capture(0, loss)
        grad = model.weight.grad.double().norm().item()
        before = model.weight.detach().double()
        optimizer.step()
        probe.commit()
        row = probe.frames()["layers"].iloc[0]
    update = (model.weight.detach().double() - before).norm().item()
    assert row["grad_norm"] == pytest.approx(grad, rel=1e-6, abs=0)
    assert row["update_ratio"] == pytest.approx(update / before.norm().item(), rel=1e-6, abs=0)


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_a_float64_model_reads_gradients_near_scale_exactly(scale: float) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4)).double()
    x = torch.randn(8, 16, dtype=torch.float64)
    with GradientProbe(model, updates=False) as probe:
        output = model(x)
        output.retain_grad()
        loss = (output * scale).sum()  # dL/d(output) = scale everywhere
        loss.backward()
        probe.capture(0, loss)
        probe.commit()
        frames = probe.frames()
    layers, step = frames["layers"], frames["steps"].iloc[0]
    grads = [model[0].weight.grad, model[2].weight.grad]
    assert layers["grad_norm"].tolist() == pytest.approx(
        [hypot(g) for g in grads], rel=1e-12, abs=0
    )
    assert layers["grad_rms"].tolist() == pytest.approx(
        [hypot(g) / math.sqrt(g.numel()) for g in grads], rel=1e-12, abs=0
    )
    assert layers["act_grad_norm"].iloc[1] == pytest.approx(hypot(output.grad), rel=1e-12, abs=0)
    everything = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert step["grad_total_norm"] == pytest.approx(hypot(everything), rel=1e-12, abs=0)


def test_the_per_step_total_norm_of_a_float64_model_near_1e300_is_finite() -> None:
    model = nn.Linear(4, 4).double()
    with GradientProbe(model, every=2) as probe:
        for step in range(2):  # step 1 is not probed: the total is computed on its own
            loss = (model(torch.ones(3, 4, dtype=torch.float64)) * 1e300).sum()
            model.zero_grad()
            loss.backward()
            probe.capture(step, loss)
            expected = hypot(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
            assert float(probe.grad_total_norm()) == pytest.approx(expected, rel=1e-12, abs=0)
            probe.commit()
