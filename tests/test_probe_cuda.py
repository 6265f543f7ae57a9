"""The probe on a GPU: every number equals a float64 recomputation on the CPU of the same tensors.

Marked `cuda`; skipped where no GPU is present (`pytest -m cuda` runs only these). The CPU and
GPU paths differ (fused float64 reductions on the device, no row reads), so each metric is
checked against float64 norms of the very gradients, outputs and weights the GPU run produced,
to 1e-6 relative and with abs=0 so that an underflowed 0 never passes for a tiny value.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vgx.probe import GradientProbe

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-6, abs=0)


def test_cuda_probe_matches_a_float64_cpu_recomputation_of_every_metric() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.Tanh(), nn.Linear(512, 10)
    ).cuda()
    with torch.no_grad():
        model[0].weight.mul_(1e-12)  # gradients of the layers above near 1e-12 and below
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    linears = [model[0], model[2], model[4]]
    outputs: dict[nn.Module, torch.Tensor] = {}

    def keep(module: nn.Module, args: object, output: torch.Tensor) -> None:
        output.retain_grad()
        outputs[module] = output

    for layer in (*linears, model[1], model[3]):
        layer.register_forward_hook(keep)
    x, y = torch.randn(256, 64, device="cuda"), torch.randint(0, 10, (256,), device="cuda")
    with GradientProbe(model, detail_every=1) as probe:
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        probe.capture(0, loss)
        grads = [layer.weight.grad.detach().cpu().double() for layer in linears]
        before = [layer.weight.detach().cpu().double() for layer in linears]
        optimizer.step()
        probe.commit()
        frames = probe.frames()
    layers, step = frames["layers"], frames["steps"].iloc[0]
    after = [layer.weight.detach().cpu().double() for layer in linears]
    for row, grad, w0, w1, layer in zip(
        layers.itertuples(), grads, before, after, linears, strict=True
    ):
        assert row.grad_norm == approx(grad.norm().item())
        assert row.weight_norm == approx(w0.norm().item())
        assert row.update_ratio == approx((w1 - w0).norm().item() / w0.norm().item())
        assert row.act_grad_norm == approx(outputs[layer].grad.cpu().double().norm().item())
    relu = outputs[model[1]].detach().cpu().double()
    assert layers.act_mean[0] == approx(relu.mean().item())
    assert layers.act_std[0] == approx(relu.std(correction=0).item())
    assert layers.zero_fraction[0] == approx((relu == 0).double().mean().item())
    everything = torch.cat([p.grad.detach().cpu().double().reshape(-1) for p in model.parameters()])
    assert step.grad_total_norm == approx(everything.norm().item())
    assert step.loss == approx(loss.item())
