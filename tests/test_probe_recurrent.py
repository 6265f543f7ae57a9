"""hidden_grad_norm and cell_grad_norm of fused recurrent layers are the total ‖∂L/∂h_t‖, ‖∂L/∂c_t‖.

The reference unrolls the same weights step by step in float64 with the cell equations written
out here (PyTorch's documented gate layout), independent of vgx's code, and reads every state's
gradient with retain_grad(): through later time steps, later layers and the final states.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from vgx.models.rnn import RecurrentNet
from vgx.models.spec import NetSpec
from vgx.probe import GradientProbe

RTOL = 1e-6
BATCH, STEPS, FEATURES, WIDTH = 3, 9, 2, 4


def rnn_step(x: Tensor, h: Tensor, c: Tensor | None, m: nn.RNNBase) -> tuple[Tensor, None]:
    return torch.tanh(
        x @ m.weight_ih_l0.T + m.bias_ih_l0 + h @ m.weight_hh_l0.T + m.bias_hh_l0
    ), None


def lstm_step(x: Tensor, h: Tensor, c: Tensor, m: nn.RNNBase) -> tuple[Tensor, Tensor]:
    z = x @ m.weight_ih_l0.T + m.bias_ih_l0 + h @ m.weight_hh_l0.T + m.bias_hh_l0
    i, f, g, o = z.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_step(x: Tensor, h: Tensor, c: Tensor | None, m: nn.RNNBase) -> tuple[Tensor, None]:
    xr, xz, xn = (x @ m.weight_ih_l0.T + m.bias_ih_l0).chunk(3, dim=-1)
    hr, hz, hn = (h @ m.weight_hh_l0.T + m.bias_hh_l0).chunk(3, dim=-1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h, None


STEP_FUNCTIONS: dict[str, Callable[..., tuple[Tensor, Tensor | None]]] = {
    "rnn": rnn_step,
    "lstm": lstm_step,
    "gru": gru_step,
}
LOSSES: dict[str, Callable[[Tensor], Tensor]] = {
    # a weighting that differs per element, so no gradient is accidentally symmetric
    "last_step": lambda y: (y[:, -1] * torch.linspace(-1.0, 2.0, y.shape[-1])).sum(),
    "all_steps": lambda y: (y * torch.linspace(-1.0, 2.0, y[0].numel()).view_as(y[0])).sum(),
}


def vgx_net(cell: str, depth: int) -> RecurrentNet:
    torch.manual_seed(0)
    net = RecurrentNet(cell, NetSpec(FEATURES, 1, depth, WIDTH, act="tanh"))
    return net.double()


def unrolled_state_grads(
    net: RecurrentNet, cell: str, x: Tensor, loss_of: Callable[[Tensor], Tensor]
) -> dict[tuple[int, str], np.ndarray]:
    """{(layer, "h" or "c"): ‖∂L/∂state_t‖ per t} from an unrolled float64 copy of the net."""
    step = STEP_FUNCTIONS[cell]
    states: dict[tuple[int, str], list[Tensor]] = {}
    sequence = x
    for layer, block in enumerate(net.blocks):
        module = block.recurrent
        h = torch.zeros(len(x), WIDTH, dtype=torch.float64)
        c = torch.zeros_like(h) if cell == "lstm" else None
        outputs = []
        for t in range(sequence.shape[1]):
            h, c = step(sequence[:, t], h, c, module)
            for name, state in (("h", h), ("c", c)):
                if state is not None:
                    state.retain_grad()
                    states.setdefault((layer, name), []).append(state)
            outputs.append(h)
        sequence = torch.stack(outputs, dim=1)
    loss_of(net.head(sequence)).backward()
    return {
        key: np.array([float(state.grad.norm()) for state in values])
        for key, values in states.items()
    }


def probed_time_table(net: RecurrentNet, x: Tensor, loss_of: Callable[[Tensor], Tensor]):
    with GradientProbe(net) as probe:
        loss = loss_of(net(x))
        loss.backward()
        probe.capture(0, loss)
        probe.commit()
        return probe.frames()["time"]


@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("cell", STEP_FUNCTIONS)
def test_hidden_grad_norm_is_total_derivative_through_later_steps_and_layers(
    cell: str, depth: int, loss_name: str
) -> None:
    net = vgx_net(cell, depth)
    x = torch.randn(BATCH, STEPS, FEATURES, dtype=torch.float64)
    time = probed_time_table(net, x, LOSSES[loss_name])
    expected = unrolled_state_grads(net, cell, x, LOSSES[loss_name])
    for layer in range(depth):
        rows = time[time.layer == layer].sort_values("t")
        want = expected[layer, "h"]
        assert list(rows.t) == list(range(STEPS))
        assert rows.hidden_grad_norm.to_numpy(np.float64) == pytest.approx(want, rel=RTOL, abs=0)


@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("depth", [1, 2])
def test_cell_grad_norm_of_lstm_is_total_derivative_of_the_cell_state(
    depth: int, loss_name: str
) -> None:
    net = vgx_net("lstm", depth)
    x = torch.randn(BATCH, STEPS, FEATURES, dtype=torch.float64)
    time = probed_time_table(net, x, LOSSES[loss_name])
    expected = unrolled_state_grads(net, "lstm", x, LOSSES[loss_name])
    for layer in range(depth):
        rows = time[time.layer == layer].sort_values("t")
        want = expected[layer, "c"]
        assert rows.cell_grad_norm.to_numpy(np.float64) == pytest.approx(want, rel=RTOL, abs=0)


def relu_rnn_step(x: Tensor, h: Tensor, c: Tensor | None, m: nn.RNNBase) -> tuple[Tensor, None]:
    return torch.relu(
        x @ m.weight_ih_l0.T + m.bias_ih_l0 + h @ m.weight_hh_l0.T + m.bias_hh_l0
    ), None


USER_LAYERS = {
    "rnn_tanh": (lambda: nn.RNN(FEATURES, WIDTH), rnn_step),
    "rnn_relu": (lambda: nn.RNN(FEATURES, WIDTH, nonlinearity="relu"), relu_rnn_step),
    "lstm": (lambda: nn.LSTM(FEATURES, WIDTH), lstm_step),
    "gru": (lambda: nn.GRU(FEATURES, WIDTH), gru_step),
}


@pytest.mark.parametrize("kind", USER_LAYERS)
def test_user_fused_layer_counts_final_state_and_given_initial_state(kind: str) -> None:
    # time-major input, hx passed by keyword, a loss on two early outputs and on h_n (and c_n)
    torch.manual_seed(1)
    build, step = USER_LAYERS[kind]
    layer = build().double()
    x = torch.randn(STEPS, BATCH, FEATURES, dtype=torch.float64)
    h0 = torch.randn(1, BATCH, WIDTH, dtype=torch.float64)
    hx = (h0, torch.randn_like(h0)) if kind == "lstm" else h0
    weights = torch.linspace(-1.0, 2.0, WIDTH, dtype=torch.float64)

    def loss_of(sequence: Tensor, final: Tensor | tuple[Tensor, ...]) -> Tensor:
        finals = final if isinstance(final, tuple) else (final,)
        return (sequence[:2] * weights).sum() + sum((f * weights.flip(0)).sum() for f in finals)

    with GradientProbe(layer) as probe:
        loss = loss_of(*layer(x, hx=hx))
        loss.backward()
        probe.capture(0, loss)
        probe.commit()
        time = probe.frames()["time"].sort_values("t")

    h, c = (hx[0][0], hx[1][0]) if kind == "lstm" else (hx[0], None)
    hs, cs = [], []
    for t in range(STEPS):
        h, c = step(x[t], h, c, layer)
        for state, kept in ((h, hs), (c, cs)):
            if state is not None:
                state.retain_grad()
                kept.append(state)
    final = (h.unsqueeze(0), c.unsqueeze(0)) if kind == "lstm" else h.unsqueeze(0)
    loss_of(torch.stack(hs), final).backward()
    want = [float(s.grad.norm()) for s in hs]
    assert time.hidden_grad_norm.to_numpy(np.float64) == pytest.approx(want, rel=RTOL, abs=0)
    if cs:
        want_c = [float(s.grad.norm()) for s in cs]
        assert time.cell_grad_norm.to_numpy(np.float64) == pytest.approx(want_c, rel=RTOL, abs=0)
    else:
        assert time.cell_grad_norm.isna().all()
