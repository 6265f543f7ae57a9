"""The README's five-line example works on a user's own model."""

from __future__ import annotations

import torch
from torch import nn

import vgx


def test_readme_example_records_every_layer_at_every_step():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.randn(16, 4), torch.randint(0, 2, (16,))) for _ in range(3)]
    with vgx.GradientProbe(model) as probe:
        for step, (x, y) in enumerate(batches):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            probe.capture(step, loss)
            optimizer.step()
            probe.commit()
    layers = probe.frames()["layers"]
    assert len(layers) == 3 * 2 and {"grad_norm", "act_grad_norm"} <= set(layers.columns)


def test_diagnose_is_a_function_of_the_package():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    batch = (torch.randn(8, 4), torch.randint(0, 2, (8,)))
    diagnosis = vgx.diagnose(model, batch, nn.functional.cross_entropy)
    assert isinstance(diagnosis.to_dict(), dict)
