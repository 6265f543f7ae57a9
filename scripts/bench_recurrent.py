"""What exact ‖∂L/∂h_t‖ costs on a probed step, for three exact methods, side by side.

vgx's rnn/lstm/gru nets (adding problem shapes: batch 64, width 64, 2 inputs) train one probed
step after another in these configurations, interleaved in one process (round-robin blocks), so
machine noise hits all alike; each prints its median step time and its ratio to the bare fused
model and to the probe without its time table:

- fused: the model as vgx builds it (fused nn.RNN/LSTM/GRU), no probe
- probe, time off: GradientProbe(time=False), everything else recorded
- probe, exact (shipped): the backward recurrence of vgx/probe/recurrent.py
- probe + replica (b): time off, plus per layer an unrolled autograd replica sharing the fused
  layer's weights, whose backward from the direct output gradient gives ∂L/∂h_t
- unrolled cells (a): every layer an unrolled loop of torch cell ops (always, not only when
  probed), whose per-call output gradients the probe records

Run it on an idle machine: `python scripts/bench_recurrent.py` (about a minute).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from vgx.models.rnn import RecurrentNet
from vgx.models.spec import NetSpec
from vgx.probe import GradientProbe

CELL_OPS: dict[str, Callable[..., Tensor | tuple[Tensor, Tensor]]] = {
    "rnn": torch.rnn_tanh_cell,
    "lstm": torch.lstm_cell,
    "gru": torch.gru_cell,
}


def cell_loop(cell: str, layer: nn.RNNBase, x: Tensor, weights: list[Tensor]) -> list[Tensor]:
    """h_t for every t (batch first input), unrolled with the fused layer's weights."""
    op = CELL_OPS[cell]
    h = x.new_zeros(len(x), layer.hidden_size).requires_grad_()  # states only: no dW, no dx
    state: Tensor | tuple[Tensor, Tensor] = (h, h) if cell == "lstm" else h
    hs = []
    for t in range(x.shape[1]):
        state = op(x[:, t], state, *weights)
        hs.append(state[0] if cell == "lstm" else state)
    return hs


class Unrolled(nn.Module):
    """Method (a): the fused layer replaced by torch cell ops over its own parameters."""

    def __init__(self, cell: str, fused: nn.RNNBase) -> None:
        super().__init__()
        self.cell, self.fused = cell, fused  # keeps the parameters (and the probe's layer kind)
        self.step = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[cell](
            fused.input_size, fused.hidden_size
        )
        self.step.load_state_dict({k[:-3]: v for k, v in fused.state_dict().items()})

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        h = x.new_zeros(len(x), self.fused.hidden_size)
        state: Tensor | tuple[Tensor, Tensor] = (h, h) if self.cell == "lstm" else h
        hs = []
        for t in range(x.shape[1]):
            state = self.step(x[:, t], state)
            hs.append(state[0] if self.cell == "lstm" else state)
        return torch.stack(hs, dim=1), None


class Replica:
    """Method (b): per fused layer, its input and direct output gradient, then a replica."""

    def __init__(self, cell: str, model: RecurrentNet) -> None:
        self.cell, self.taped = cell, []
        for block in model.blocks:
            block.recurrent.register_forward_hook(self._keep)

    def _keep(self, module: nn.RNNBase, args: tuple, output: tuple) -> None:
        entry = {"layer": module, "x": args[0].detach()}
        output[0].register_hook(lambda grad: entry.__setitem__("g", grad))
        self.taped.append(entry)

    def hidden_grads(self) -> list[Tensor]:
        norms = []
        for entry in self.taped:
            layer = entry["layer"]
            weights = [w.detach() for w in layer._flat_weights]
            with torch.enable_grad():
                hs = cell_loop(self.cell, layer, entry["x"], weights)
                for h in hs:
                    h.retain_grad()
                torch.stack(hs, dim=1).backward(entry["g"])
            norms.append(torch.stack([h.grad.norm() for h in hs]))
        self.taped = []
        return norms


def every_step(model: nn.Module, time: bool = True) -> GradientProbe:
    """A probe that records every group on every step: the cost of one probed, detailed step."""
    return GradientProbe(model, time=time, detail_every=1)


def configurations(cell: str, depth: int) -> dict[str, tuple[nn.Module, Callable]]:
    torch.manual_seed(0)
    fused = RecurrentNet(cell, NetSpec(2, 1, depth, 64, act="tanh"))
    unrolled = copy.deepcopy(fused)
    for block in unrolled.blocks:
        block.recurrent = Unrolled(cell, block.recurrent)
    replica_model = copy.deepcopy(fused)
    replica = Replica(cell, replica_model)
    return {
        "fused": (copy.deepcopy(fused), lambda m: None),
        "probe, time off": (copy.deepcopy(fused), lambda m: every_step(m, time=False)),
        "probe, exact (shipped)": (copy.deepcopy(fused), every_step),
        "probe + replica (b)": (replica_model, lambda m: (every_step(m, time=False), replica)),
        "unrolled cells (a)": (unrolled, every_step),
    }


def train_steps(model: nn.Module, extra: object, x: Tensor, y: Tensor, steps: int) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    probe, replica = extra if isinstance(extra, tuple) else (extra, None)
    times = []
    for step in range(steps):
        start = time.perf_counter()
        loss = ((model(x)[:, -1] - y) ** 2).mean()  # the adding problem: last step only
        optimizer.zero_grad()
        loss.backward()
        if probe is not None:
            probe.capture(step, loss)
        if replica is not None:
            replica.hidden_grads()
        optimizer.step()
        if probe is not None:
            probe.commit()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per round and config")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = torch.rand(64, args.seq_len, 2), torch.rand(64, 1)
    for cell in ("rnn", "lstm", "gru"):
        for depth in (1, 2):
            loops = {
                name: (model, make(model))
                for name, (model, make) in configurations(cell, depth).items()
            }
            times: dict[str, list[float]] = {name: [] for name in loops}
            for round_ in range(args.rounds + 1):
                for name, (model, extra) in loops.items():
                    measured = train_steps(model, extra, x, y, args.steps)
                    if round_ > 0:  # round 0 warms up
                        times[name] += measured
            base = statistics.median(times["fused"])
            quiet = statistics.median(times["probe, time off"])
            print(f"{cell}, depth {depth}, T={args.seq_len}, batch 64, width 64:")
            for name, values in times.items():
                median = statistics.median(values)
                print(
                    f"  {name:24s} {1e3 * median:8.2f} ms  {median / base:5.2f}× fused"
                    f"  {median / quiet:5.2f}× probe with time off"
                )


if __name__ == "__main__":
    main()
