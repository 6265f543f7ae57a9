"""Exact ‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ of fused nn.RNN/LSTM/GRU layers, on probed steps only.

Autograd hands a fused layer's output sequence only the gradient g_t that reaches output[:, t]
from above; the part that flows back into h_t through the layer's own later steps stays inside
the layer's backward. After backward, the total derivative is rebuilt here by the backward
recurrence (BPTT for the states alone, no weight gradients)

    δh_t = g_t + (∂h_{t+1}/∂h_t)ᵀ δh_{t+1}        (LSTM: with δc_t, through c_{t+1} and h_{t+1})

from the layer's input, its output sequence (= every h_t) and its initial state: with every h_t
known, all gates come from two batched matmuls, and only the recurrence itself loops over t (one
(B, G·H)×(G·H, H) matmul per step). It runs in the layer's dtype (at least float32), as the
layer's own backward does, and sums each step's squares in float64; in a float32 layer a state
gradient below ~1e-38 flushes toward 0 there too (then reported as 0, i.e. −inf decades).
∂L/∂h_n and ∂L/∂c_n (a loss on the final state) join at the last step. This is exact for the
function the layer computes: single layer, one direction, no projection, a padded tensor input.
Other fused layers (num_layers > 1, whose lower layers' states are never returned;
bidirectional; proj_size; PackedSequence) get None from watch(), and the probe records only
their direct output gradient (`output_grad_norm`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

# the `time` table's value columns (docs/run-directory.md): ∂L/∂h_t, ∂L/∂c_t (LSTM), and the
# gradient reaching a fused layer's output sequence directly (without its own recurrence)
HIDDEN, CELL, OUTPUT = "hidden_grad_norm", "cell_grad_norm", "output_grad_norm"
TIME_COLUMNS = (HIDDEN, CELL, OUTPUT)


Layout = Callable[[Tensor], Tensor]  # a gradient as it arrives -> time-major (T, B, ·)
OutputGrads = tuple[Tensor | None, ...]  # what an autograd node's pre-hook receives


def _as_is(grad: Tensor) -> Tensor:
    return grad


@dataclass
class Tape:
    """What one call of a fused layer needs for its backward recurrence, time-major (T, B, ·)."""

    module: nn.RNNBase
    x: Tensor  # (T, B, I) the layer's input
    h: Tensor  # (T, B, H) its output sequence: h_t for every t
    h0: Tensor | None  # (B, H) initial states; None: zeros
    c0: Tensor | None
    versions: tuple[int, int]  # of x and h: an in-place change after the forward voids the tape
    grads: dict[str, Tensor] = field(default_factory=dict)  # "output", "h_n", "c_n" as they come


def exact(module: nn.Module, x: Any) -> bool:
    """Whether this call's hidden-state gradients can be rebuilt exactly (see the module doc)."""
    return (
        type(module) in RECURRENCES
        and getattr(module, "num_layers", 0) == 1
        and not getattr(module, "bidirectional", True)
        and getattr(module, "proj_size", 0) == 0
        and isinstance(x, Tensor)
    )


def _tensor(module: nn.Module, name: str) -> Tensor:
    """One of a fused layer's parameters by its PyTorch name (weight_hh_l0, bias_ih_l0, ...)."""
    value = getattr(module, name)
    assert isinstance(value, Tensor), name
    return value


def watch(module: nn.RNNBase, args: tuple, kwargs: Mapping[str, Any], output: Any) -> Tape | None:
    """A forward hook's part: the tape of this call, with hooks that collect its gradients.

    The hooks are pre-hooks on the autograd nodes that made the outputs (as the probe's own), so
    they see each output's gradient once backward has summed it, and cost nothing otherwise.
    """
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, Tensor) or not exact(module, x):
        return None
    sequence, final = output
    if sequence.grad_fn is None:  # not part of a graph: nothing to measure
        return None
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    batched = x.dim() == 3
    time_major = partial(_time_major, batched and module.batch_first, batched)
    h0, c0 = (hx if isinstance(hx, tuple) else (hx, None)) if hx is not None else (None, None)
    h = time_major(sequence.detach())
    tape = Tape(
        module=module,
        x=time_major(x.detach()),
        h=h,
        h0=None if h0 is None else h0.detach().reshape(h.shape[1:]),
        c0=None if c0 is None else c0.detach().reshape(h.shape[1:]),
        versions=(x._version, sequence._version),
    )
    finals = final if isinstance(final, tuple) else (final,)
    watched: dict[str, tuple[Tensor, Layout]] = {
        "output": (sequence, time_major),
        "h_n": (finals[0], _as_is),
    }
    if len(finals) > 1:
        watched["c_n"] = (finals[1], _as_is)
    for name, (tensor, layout) in watched.items():
        if tensor.grad_fn is not None:
            hook = partial(_keep_grad, tape, name, tensor.output_nr, layout)
            tensor.grad_fn.register_prehook(hook)
    return tape


def _time_major(batch_first: bool, batched: bool, values: Tensor) -> Tensor:
    """(B, T, ·) or (T, B, ·) or unbatched (T, ·) as a (T, B, ·) view."""
    if not batched:
        return values.unsqueeze(1)
    return values.transpose(0, 1) if batch_first else values


def _keep_grad(tape: Tape, name: str, slot: int, layout: Layout, grads: OutputGrads) -> None:
    """An autograd pre-hook's part: keep the gradient of the watched output, time-major."""
    if (grad := grads[slot]) is not None:  # None: no gradient reached this output
        tape.grads[name] = layout(grad)


def step_squares(tape: Tape) -> dict[str, Tensor]:
    """Σ over batch and units of (∂L/∂h_t)² (LSTM: and (∂L/∂c_t)²) per t, float64, no host sync.

    All NaN when the input or output was changed in place after the forward pass (the states
    the recurrence needs are gone).
    """
    recurrence = RECURRENCES[type(tape.module)]
    steps = tape.h.shape[0]
    if (tape.x._version, tape.h._version) != tape.versions:
        nan = torch.full((steps,), torch.nan, dtype=torch.float64, device=tape.h.device)
        return dict.fromkeys(recurrence.columns, nan)
    with torch.no_grad():
        states = recurrence.backward(_Inputs.of(tape))
    return {
        column: torch.linalg.vector_norm(state, dim=(1, 2), dtype=torch.float64).square()
        for column, state in zip(recurrence.columns, states, strict=True)
    }


@dataclass(frozen=True)
class _Inputs:
    """A tape contiguous and time-major, in the layer's dtype (at least float32), as its backward.

    float64 throughout cost 2–4× more on CPU (fresh float64 temporaries, slower transcendental
    kernels; measured for T=50, B=64, H=64) for no gain over the layer's own arithmetic.
    """

    x: Tensor  # (T, B, I)
    states: Tensor  # (T + 1, B, H): h0, then h_t for every t
    c0: Tensor  # (B, H)
    g: Tensor  # (T, B, H) direct gradient of the output sequence, ∂L/∂h_n added at the last step
    g_c: Tensor  # (B, H) ∂L/∂c_n
    w_hh: Tensor  # (G·H, H), gates stacked as PyTorch stacks them
    module: nn.RNNBase

    @staticmethod
    def of(tape: Tape) -> _Inputs:
        dtype = torch.promote_types(tape.h.dtype, torch.float32)
        to = partial(Tensor.to, dtype=dtype, memory_format=torch.contiguous_format)
        steps, batch, hidden = tape.h.shape
        states = torch.empty(steps + 1, batch, hidden, dtype=dtype, device=tape.h.device)
        states[0] = 0 if tape.h0 is None else tape.h0
        states[1:] = tape.h
        g = to(tape.grads["output"], copy=True) if "output" in tape.grads else states[1:] * 0
        if "h_n" in tape.grads:
            g[-1] += tape.grads["h_n"].reshape(g.shape[1:])
        zeros = torch.zeros_like(states[0])
        return _Inputs(
            x=to(tape.x),
            states=states,
            c0=zeros if tape.c0 is None else to(tape.c0),
            g=g,
            g_c=to(tape.grads["c_n"]).reshape(zeros.shape) if "c_n" in tape.grads else zeros,
            w_hh=to(_tensor(tape.module, "weight_hh_l0").detach()),
            module=tape.module,
        )

    def gate_inputs(self) -> tuple[Tensor, Tensor]:
        """W_ih x_t + b_ih and W_hh h_{t-1} + b_hh of every step at once, gate-major (G, T, B, H).

        Each gate a contiguous block: elementwise work on the strided gate slices of a
        (T, B, G·H) tensor ran 5–10× slower (measured, sigmoid over 200K values).
        """
        module, hidden = self.module, self.states.shape[-1]
        names = ("bias_ih_l0", "bias_hh_l0")
        biases = [_tensor(module, n) for n in names] if module.bias else [None, None]
        from_x = _per_gate(self.x, _tensor(module, "weight_ih_l0"), biases[0], hidden)
        from_h = _per_gate(self.states[:-1], self.w_hh, biases[1], hidden)
        return from_x, from_h


def _per_gate(values: Tensor, weight: Tensor, bias: Tensor | None, hidden: int) -> Tensor:
    """values (T, B, K) times each gate's block of weight (G·H, K), plus bias: (G, T, B, H)."""
    blocks = weight.detach().to(values.dtype).unflatten(0, (-1, hidden))  # (G, H, K)
    out = values.reshape(1, -1, values.shape[-1]) @ blocks.transpose(1, 2)  # (G, T·B, H)
    if bias is not None:
        out += bias.detach().view(-1, 1, hidden)
    return out.view(-1, *values.shape[:2], hidden)


def _step_major(like: Tensor) -> tuple[Tensor, Tensor]:
    """An empty (T, B, G, H) buffer and its (G, T, B, H) view, to fill gate by gate.

    Written through the view, it needs no transposing copy (3 MB for the LSTM at T=50,
    B=64, H=64) before the per-step multiplies, which read one (B, G, H) block each.
    """
    buffer = like.new_empty(*like.shape[1:3], like.shape[0], like.shape[3])
    return buffer, buffer.permute(2, 0, 1, 3)


def _sigmoid_slope(s: Tensor) -> Tensor:
    return torch.addcmul(s, s, s, value=-1)  # σ' = σ − σ², one pass


def _rnn_backward(inputs: _Inputs) -> tuple[Tensor]:
    """h_t = act(W_ih x_t + W_hh h_{t-1} + b): δh_{t-1} = g_{t-1} + W_hhᵀ (act'_t ⊙ δh_t)."""
    h = inputs.states[1:]
    slope = RNN_SLOPES[str(inputs.module.nonlinearity)](h).unbind()  # act' from each output
    dh = inputs.g  # overwritten from the last step down with the total derivative
    each_dh, scaled = dh.unbind(), torch.empty_like(dh[0])
    for t in range(len(dh) - 1, 0, -1):  # per-step views made once: the loop is dispatch-bound
        torch.mul(each_dh[t], slope[t], out=scaled)
        each_dh[t - 1].addmm_(scaled, inputs.w_hh)
    return (dh,)


RNN_SLOPES: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": lambda h: torch.addcmul(torch.ones_like(h), h, h, value=-1),  # 1 − h²
    "relu": lambda h: (h > 0).to(h.dtype),
}


def _lstm_backward(inputs: _Inputs) -> tuple[Tensor, Tensor]:
    """PyTorch's LSTM, gates (i, f, g, o): c_t = f c_{t-1} + i g, h_t = o tanh(c_t).

    δc_t = δh_t o (1 − tanh² c_t) + f_{t+1} δc_{t+1};  δh_{t-1} = g_{t-1} + W_hhᵀ δz_t with
    δz_t = (δc_t g σ'_i, δc_t c_{t-1} σ'_f, δc_t i (1 − g²), δh_t tanh(c_t) σ'_o).
    """
    from_x, from_h = inputs.gate_inputs()
    z = from_x.add_(from_h)  # (4, T, B, H)
    g = z[2].tanh_()
    z[:2].sigmoid_()
    z[3].sigmoid_()
    i, f, _, o = z.unbind()
    ig = i * g
    cells = torch.empty_like(inputs.states)  # (T + 1, B, H): c0, then c_t
    cells[0] = inputs.c0
    each_c, each_ig, each_f = cells.unbind(), ig.unbind(), f.unbind()
    for t in range(len(ig)):  # elementwise scan: the layer returns only the last cell state
        torch.addcmul(each_ig[t], each_f[t], each_c[t], out=each_c[t + 1])
    tanh_c = cells[1:].tanh()
    to_cell = torch.addcmul(o, o * tanh_c, tanh_c, value=-1).unbind()  # ∂h_t/∂c_t
    factors, per_gate = _step_major(z)  # (T, B, 4, H) for one multiply per step
    torch.addcmul(z, z, z, value=-1, out=per_gate)  # σ' = σ − σ², then each gate's factor
    per_gate[0].mul_(g)
    per_gate[1].mul_(cells[:-1])
    torch.addcmul(i, ig, g, value=-1, out=per_gate[2])  # i (1 − g²)
    per_gate[3].mul_(tanh_c)
    dh, dc = inputs.g, torch.empty_like(inputs.g)
    # per-step views made once: the loop is dispatch-bound (5 small kernels a step)
    each_dh, each_dc, wide_dc = dh.unbind(), dc.unbind(), dc.unsqueeze(2).unbind()
    by_cell, by_output = factors[:, :, :3].unbind(), factors[:, :, 3].unbind()
    dz = torch.empty_like(factors[0])  # (B, 4, H)
    dz_cell, dz_output, dz_flat = dz[:, :3], dz[:, 3], dz.flatten(1)
    carry = inputs.g_c.clone()  # f_{t+1} δc_{t+1}; at the last step ∂L/∂c_n
    for t in range(len(dh) - 1, -1, -1):
        torch.addcmul(carry, each_dh[t], to_cell[t], out=each_dc[t])
        if t > 0:
            torch.mul(by_cell[t], wide_dc[t], out=dz_cell)
            torch.mul(by_output[t], each_dh[t], out=dz_output)
            each_dh[t - 1].addmm_(dz_flat, inputs.w_hh)
            torch.mul(each_dc[t], each_f[t], out=carry)
    return dh, dc


def _gru_backward(inputs: _Inputs) -> tuple[Tensor]:
    """PyTorch's GRU, gates (r, z, n): n = tanh(x_n + r (W_hn h_{t-1} + b_hn)),
    h_t = (1 − z) n + z h_{t-1}:  δh_{t-1} = g_{t-1} + z_t δh_t + W_hhᵀ (K_t ⊙ δh_t)."""
    from_x, from_h = inputs.gate_inputs()  # (3, T, B, H): gates r, z, n
    r, z = from_x[:2].add_(from_h[:2]).sigmoid_().unbind()
    h_n = from_h[2]
    n = torch.addcmul(from_x[2], r, h_n).tanh_()
    # K_t: ∂h_t/∂(W_hh h_{t-1} + b_hh) per gate, (T, B, 3, H) for one multiply per step
    factors, per_gate = _step_major(from_h)
    through_n = torch.addcmul(1 - z, (1 - z) * n, n, value=-1)  # (1 − z)(1 − n²)
    torch.mul(through_n * h_n, _sigmoid_slope(r), out=per_gate[0])
    torch.mul(inputs.states[:-1] - n, _sigmoid_slope(z), out=per_gate[1])
    torch.mul(through_n, r, out=per_gate[2])
    dh = inputs.g
    # per-step views made once: the loop is dispatch-bound (3 small kernels a step)
    each_dh, wide_dh, each_z = dh.unbind(), dh.unsqueeze(2).unbind(), z.unbind()
    each_factor, scaled = factors.unbind(), torch.empty_like(factors[0])
    for t in range(len(dh) - 1, 0, -1):
        each_dh[t - 1].addcmul_(each_dh[t], each_z[t])
        torch.mul(each_factor[t], wide_dh[t], out=scaled)
        each_dh[t - 1].addmm_(scaled.flatten(1), inputs.w_hh)
    return (dh,)


@dataclass(frozen=True)
class Recurrence:
    """One fused layer type: the time-table columns its backward recurrence fills."""

    columns: tuple[str, ...]
    backward: Callable[[_Inputs], tuple[Tensor, ...]]


RECURRENCES: dict[type[nn.RNNBase], Recurrence] = {
    nn.RNN: Recurrence((HIDDEN,), _rnn_backward),
    nn.LSTM: Recurrence((HIDDEN, CELL), _lstm_backward),
    nn.GRU: Recurrence((HIDDEN,), _gru_backward),
}


def stack_tapes(tapes: list[tuple[int, Tape]]) -> dict[str, Tensor]:
    """Every tape's per-step squares, named for the step's single host transfer."""
    return {
        f"tape {k} {column}": squares
        for k, (_, tape) in enumerate(tapes)
        for column, squares in step_squares(tape).items()
    }


def time_series(
    tapes: list[tuple[int, Tape]], host: Mapping[str, np.ndarray], scale: float
) -> dict[str, dict[int, np.ndarray]]:
    """column -> layer -> norm per time step; a layer called several times adds its squares."""
    squares: dict[str, dict[int, np.ndarray]] = {}
    for k, (index, tape) in enumerate(tapes):
        for column in RECURRENCES[type(tape.module)].columns:
            values = host[f"tape {k} {column}"] / scale**2
            total = squares.setdefault(column, {}).get(index, np.zeros(0))
            longer = np.zeros(max(len(total), len(values)))
            longer[: len(total)] += total
            longer[: len(values)] += values
            squares[column][index] = longer
    return {
        column: {i: np.sqrt(v) for i, v in by_layer.items()} for column, by_layer in squares.items()
    }


def time_rows(
    step: int, order: np.ndarray, time: Mapping[str, Mapping[int, np.ndarray]]
) -> dict[str, Any] | None:
    """The `time` table's rows of one step, layers by forward position; NaN: not measured."""
    lengths: dict[int, int] = {}
    for by_layer in time.values():
        for i, values in by_layer.items():
            lengths[i] = max(lengths.get(i, 0), len(values))
    layers = [(pos, i, lengths[i]) for pos, i in enumerate(order) if i in lengths]
    if not layers:
        return None
    rows: dict[str, Any] = {
        "step": step,
        "layer": np.concatenate([np.full(n, pos) for pos, _, n in layers]),
        "t": np.concatenate([np.arange(n) for _, _, n in layers]),
    }
    for column in TIME_COLUMNS:
        by_layer = time.get(column, {})
        parts = [np.full(n, np.nan) for _, _, n in layers]
        for part, (_, i, _) in zip(parts, layers, strict=True):
            if i in by_layer:
                part[: len(by_layer[i])] = by_layer[i]
        rows[column] = np.concatenate(parts)
    return rows
