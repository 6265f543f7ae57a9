"""Per-layer gradient, activation and update metrics, recorded every `every`-th training step.

The loop calls `capture(step, loss)` after backward (and after `GradScaler.unscale_`), before
clipping and `optimizer.step()`, then `commit()` after the step. Definitions (column names are the
contract of docs/run-directory.md):

- Layers: modules that own weights: Linear (`linear`), Conv1d/2d/3d (`conv`), RNN/LSTM/GRU and their
  cells (`rnn`, `lstm`, `gru`), BatchNorm/LayerNorm/GroupNorm with an affine weight (`norm`). A
  layer's weight is every `weight*` parameter it owns (biases excluded); `fan_in`/`fan_out` follow
  torch.nn.init for its first weight (a 1-D norm weight: both are its size). Order: forward order,
  the order in which layers first run on the first recorded forward pass (registration order
  before it; layers that never ran come last, in registration order).
- `grad_norm` = ‖dL/dW‖₂ over the layer's weights; `grad_rms` = grad_norm / √params; `weight_norm`
  = ‖W‖₂ before the optimizer step; `update_ratio` = ‖W_after − W_before‖₂ / ‖W_before‖₂;
  `nonfinite` = NaN/Inf elements of dL/dW. Nothing non-finite is masked: such norms are inf/NaN.
  All-frozen weights give grad_norm NaN; a trainable weight without `.grad` counts as zero. Every
  norm accumulates in float64 (vgx/probe/norms.py), to ≤ 1e-6 relative for any size: a float32
  layer whose gradients are all 1e-30 reads about 1e-30·√n, not 0; float64 tensors are scaled
  by a power of two near their largest element first, so 1e-300 and 1e300 are read exactly.
- `act_grad_norm` = ‖dL/d(output)‖₂, output = the module's forward output (RNN: the output
  sequence; LSTMCell: h), read by a pre-hook that a forward hook puts on the autograd node that
  made the output (not a full backward hook), so in-place ops after the layer and inputs without
  requires_grad are fine. 0 when the output got no gradient, NaN when it was not part of a graph.
  With a scaled loss (AMP) pass `loss_scale` to capture().
- `act_mean`, `act_std` (population std), `saturated`, `zero_fraction`, `dead_units`: over all
  elements of the output of
  the first activation module (stats.ACTIVATIONS: Sigmoid, Tanh, ReLU, ...) that runs after
  the layer and before the next layer; else of the layer's own output as it stands when the next
  layer runs (functional activations, RNN hidden states). `saturated`: fraction of units whose
  derivative is below 5% of its maximum: sigmoid y(1−y) < 0.0125, tanh 1−y² < 0.05, softsign
  (1−|y|)² < 0.05; NaN for activations that do not saturate and for raw layer outputs.
  `zero_fraction`: fraction of exact zeros, for the ReLU family (ReLU, ReLU6, LeakyReLU, PReLU,
  RReLU: the leaky ones measure ~0, they cannot die; ~0.5 in a healthy ReLU layer);
  `dead_units`: fraction of units (all output dimensions but the batch) that are zero for every
  example of the batch; both NaN for other activations and for raw layer outputs. A NaN output
  makes act_mean and act_std NaN, which marks the layer for locate_nonfinite().
- A module called several times per forward (shared layer, unrolled cell) is aggregated: squared
  norms add up over calls; activation statistics pool all elements of all calls.
- Table `time` (RNN family), per time step t, norms over batch and hidden units:
  `hidden_grad_norm` = ‖∂L/∂h_t‖₂, the total derivative through later steps and layers (a
  cell: its t-th call's output gradient; nn.RNN/LSTM/GRU with one layer, one direction, no
  projection and a padded input: rebuilt by recurrent.py after backward; NaN for other fused
  layers); `cell_grad_norm` = ‖∂L/∂c_t‖₂ (nn.LSTM); `output_grad_norm` (fused layers, either
  layout or a PackedSequence) = ‖∂L/∂output[:, t]‖₂, the gradient reaching the output sequence
  directly, without the layer's own recurrence.
- Per step (table `steps`): `loss`, `grad_total_norm` (all parameters with grads, as
  clip_grad_norm_), `nonfinite` (NaN/Inf gradient elements of those parameters).
- Histograms (table `hist`, vgx/histograms.py), on probed steps that are multiples of
  `hist_every` (0: never): per layer, counts of |x| per log-magnitude bin of dL/dW (at capture),
  dL/d(output) (in the gradient hook) and the activation values (with the statistics), counted on
  the device beside the norms and moved to the host in the same transfer.

Groups: `weights` (grad_norm, grad_rms) and `act_grads` (act_grad_norm) are read on every probed
step; the detail groups `updates` (weight_norm, update_ratio), `activations` (act_mean, act_std,
saturated, zero_fraction, dead_units) and `time` only on detail steps (vgx/probe/schedule.py:
with detail_every=0, steps 0–9, then 9 a decade; detail_every=N: every N-th probed step; always
the last probed step up to `final_step` and histogram steps), NaN on the others. A group
switched off computes nothing and writes NaN columns (`time`: no rows); `nonfinite` is always
filled, it comes from the per-step check. Output gradients up to 2^20 elements are kept from
the backward hook to capture() and read together there (one Norms call); larger ones are reduced
in the hook.

Which forward passes are recorded: after commit() of step s the hooks are armed for step s + 1
(for the first forward: step 0) when that step is probed; call `start_step(step)` before the
forward pass when steps are not consecutive. Forward passes under torch.no_grad() are ignored.
`keep_step()` between capture() and commit() records an unprobed step anyway (a diverging one)
with what exists then: everything but the activation columns, which are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from vgx.errors import ConfigError
from vgx.histograms import QUANTITIES, hist_rows, layer_counts, log_histogram
from vgx.probe import recurrent
from vgx.probe.activations import RAW, Shape, activation_metrics, activation_shape, statistics
from vgx.probe.discovery import LAYER_COLUMNS, fans, find_layers
from vgx.probe.norms import (
    Norms,
    Scratch,
    combine_host,
    packed_step_norms,
    step_norms,
    tensor_norm,
    total_norm,
)
from vgx.probe.record import Record, output_grad_metrics, stack_record, to_host
from vgx.probe.schedule import LOG, check_detail_every, is_detailed
from vgx.probe.tables import LAYER_METRICS, MemorySink, Sink, typed


@dataclass
class _Capture:
    """One recorded step between capture() and commit()."""

    step: int
    record: Record | None
    pieces: dict[str, Tensor]  # device tensors, moved to the host together at commit()
    loss: float  # when the loss was given as a number (NaN: read from pieces["loss"])
    loss_scale: float
    present: list[int]  # indices of the parameters that had a .grad
    nonfinite: np.ndarray  # non-finite gradient elements per parameter
    snapshot: list[Tensor] | None  # the weights before optimizer.step()


@dataclass
class _Metrics:
    """One recorded step on the host; per-layer arrays are in registration order."""

    loss: float
    grad_total_norm: float
    nonfinite: int
    layers: dict[str, np.ndarray]
    act_nonfinite: np.ndarray
    time: dict[str, dict[int, np.ndarray]]  # time-table column -> layer -> value per step
    hist: np.ndarray | None  # (layer, quantity, bin) counts on histogram steps


class _OneThread:
    """The probe's own CPU kernels run on one thread, then the caller's count is restored.

    They are small (a 128 × 256 output, a 256 × 256 gradient): split over two threads each
    reduction gains little and pays a hand-over, and where another process holds the second
    core every parallel kernel waits for it: on a shared 2-core box at load 3, 2-thread steps
    with all metrics took 6.9× a bare step against 1.5× for the same work on one thread.
    Switching costs ~0.1 µs.
    """

    def __init__(self) -> None:
        self._saved: list[int] = []

    def __enter__(self) -> None:
        threads = torch.get_num_threads()
        self._saved.append(threads)
        if threads > 1:
            torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        threads = self._saved.pop()
        if threads > 1:
            torch.set_num_threads(threads)

    @contextmanager
    def released(self) -> Iterator[None]:
        """The caller's threads back for the reductions over every gradient or weight (13 MB
        for an MLP 50×256): in a step on an idle 2-core box they took 1.04 ms on two threads
        against 1.42 ms on one."""
        threads = self._saved[-1] if self._saved else 1
        if threads > 1:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if threads > 1:
                torch.set_num_threads(1)


ONE_THREAD = _OneThread()
# An output gradient up to this many elements is kept until capture() (4 MB in float32), which
# reads all of them in one Norms call: a norm per hook cost 2-3x as much in Python and kernel
# launches. Larger ones are reduced in the hook, so memory never grows by much.
_KEEP = 1 << 20
# quantity index of each histogram in vgx.histograms.QUANTITIES
_GRAD, _ACT_GRAD, _ACT = (QUANTITIES.index(q) for q in ("grad", "act_grad", "act"))


class GradientProbe:
    """Records per-layer gradient, activation and update metrics of `model` every `every` steps."""

    def __init__(
        self,
        model: nn.Module,
        every: int = 1,
        weights: bool = True,
        act_grads: bool = True,
        activations: bool = True,
        updates: bool = True,
        time: bool = True,
        hist_every: int = 0,
        detail_every: int = LOG,
        final_step: int | None = None,
        sink: Sink | None = None,
    ) -> None:
        if every < 1:
            raise ConfigError(f"probe.every={every}: must be at least 1")
        if hist_every < 0:
            raise ConfigError(f"probe.hist_every={hist_every}: must be 0 (off) or more")
        check_detail_every(detail_every)
        self.every, self.hist_every = every, hist_every
        self.detail_every, self.final_step = detail_every, final_step
        self._on = {
            "weights": weights,
            "act_grads": act_grads,
            "activations": activations,
            "updates": updates,
            "time": time,
        }
        self._sink = MemorySink() if sink is None else sink
        self._layers = find_layers(model)
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._weights: list[Tensor] = list(
            {id(w): w for layer in self._layers for w in layer.weights}.values()
        )
        param_index = {id(p): i for i, p in enumerate(self._params)}
        weight_index = {id(w): i for i, w in enumerate(self._weights)}
        pairs = [(i, w) for i, layer in enumerate(self._layers) for w in layer.weights]
        # (layer, weight) pairs: per-layer sums on the host are bincounts over these
        self._pair_layer = np.array([i for i, _ in pairs], dtype=np.int64)
        self._pair_weight = np.array([weight_index[id(w)] for _, w in pairs], dtype=np.int64)
        self._pair_param = np.array([param_index.get(id(w), -1) for _, w in pairs], dtype=np.int64)
        self._numel = np.array([sum(w.numel() for w in la.weights) for la in self._layers], float)
        self._cells = {i for i, layer in enumerate(self._layers) if layer.cell}
        self._timed = {i for i, layer in enumerate(self._layers) if layer.cell or layer.fused_rnn}
        self._order: list[int] | None = None  # registration indices in forward order, once known
        self._watch_outputs = act_grads or activations or time
        self._handles = [
            layer.module.register_forward_hook(partial(self._on_layer_output, i))
            for i, layer in enumerate(self._layers)
        ]
        if time:  # exact ‖∂L/∂h_t‖ of fused recurrent layers (recurrent.py); kwargs carry hx
            self._handles += [
                layer.module.register_forward_hook(
                    partial(self._on_recurrent_output, i), with_kwargs=True
                )
                for i, layer in enumerate(self._layers)
                if layer.fused_rnn
            ]
        if activations:
            self._handles += [
                module.register_forward_hook(partial(self._on_activation_output, shape))
                for module in model.modules()
                if (shape := activation_shape(module)) is not None
            ]
        self._record: Record | None = None
        self._capture: _Capture | None = None
        self._last: _Metrics | None = None  # the latest probed step, for locate_nonfinite()
        self._last_step = -1
        self._buffer: list[Tensor] | None = None  # reused snapshot of the weights (updates)
        self._scratch = Scratch()  # reused workspace of the statistics and output-gradient norms
        self._total = partial(_total, self._scratch)
        self._kept_norms = Norms()  # of the output gradients kept until capture()
        self._norms = Norms()  # of gradients, weights and updates
        self._unprobed: tuple[int, Tensor | float, float] | None = None  # for keep_step()
        self.start_step(0)

    # -- the training loop's calls ------------------------------------------------------------

    def is_probed(self, step: int) -> bool:
        """Whether `step` is recorded; on other steps each hook costs one flag check."""
        return step % self.every == 0

    def is_detailed(self, step: int) -> bool:
        """Whether probed step `step` also records activations, updates and time (schedule.py);
        the last probed step up to `final_step` always does."""
        last = self.final_step
        final = last is not None and last - self.every < step <= last
        return final or is_detailed(step, self.detail_every)

    def start_step(self, step: int) -> None:
        """Arm (or disarm) the hooks for the forward pass of `step`; needed only to skip steps."""
        if not self.is_probed(step):
            self._record = None
            return
        hist = self.hist_every > 0 and step % self.hist_every == 0
        detail = hist or self.is_detailed(step)  # a histogram step records everything
        self._record = Record([0] * len(self._layers), hist=hist, detail=detail)

    def capture(self, step: int, loss: Tensor | float, loss_scale: float = 1.0) -> None:
        """Read this step's gradients: after backward and unscale_, before clipping and step().

        `loss_scale`: the factor the loss was multiplied by before backward (AMP:
        `scaler.get_scale()`): output gradients, seen during backward, are divided by it.
        """
        record, self._record = self._record, None
        self._flush()  # commit() was skipped: record that step as it stands
        self._last_step = step
        if record is not None and self._order is None and record.seen:
            unseen = [i for i in range(len(self._layers)) if i not in record.seen]
            self._order = [*record.seen, *unseen]
        if self._order is not None and not self._watch_outputs and self._handles:
            # the forward order was all the hooks were for: later forwards run without them
            # (Python hooks on 51 layers cost ~0.15 ms a step, 0.7 % of an MLP 50×256 step)
            self.close_hooks()
        if not self.is_probed(step):
            self._last = None
            self._unprobed = (step, loss, float(loss_scale))
            return
        self._unprobed = None
        with torch.no_grad(), ONE_THREAD:
            self._capture = self._read(step, record, loss, float(loss_scale))

    def grad_total_norm(self) -> Tensor:
        """‖all gradients‖₂ of the step just captured, a 0-d float64 tensor (no host sync).

        For a loop's divergence check on every step: a probed step's value is reused, on other
        steps it is computed now, with the same float64 accumulation (fast on CPU even where
        gradients have vanished to subnormal squares).
        """
        with ONE_THREAD:
            if self._capture is not None:
                return total_norm(self._capture.pieces["grads"])
            grads = [p.grad for p in self._params if p.grad is not None]
            return total_norm(self._norms(grads))

    def keep_step(self) -> None:
        """Record the step just captured although it is not probed: for a diverging step.

        Between capture() and commit(). What exists is stored: the step's loss, total norm and
        NaN/Inf count, and per layer the weight-gradient norms with their NaN/Inf counts, the
        weights and the update; the activation columns are NaN (no hook was armed). A no-op on
        probed steps, which are recorded anyway.
        """
        if self._capture is not None or self._unprobed is None:
            return
        step, loss, loss_scale = self._unprobed
        self._unprobed = None
        with torch.no_grad(), ONE_THREAD:
            self._capture = self._read(step, None, loss, loss_scale)

    def commit(self) -> None:
        """After optimizer.step(): measure the update, emit the step's rows, arm the next step."""
        with ONE_THREAD:
            self._flush()
        if self._record is None:
            self.start_step(self._last_step + 1)

    def position(self) -> dict[str, Any]:
        """Where the probe is between two steps, for a checkpoint (vgx/run/checkpoint.py)."""
        return {"order": None if self._order is None else list(self._order)}

    def resume(self, step: int, position: dict[str, Any]) -> None:
        """Continue from a checkpoint's `position`, with `step` the next step to run."""
        self._order = position["order"]
        self._last_step = step - 1
        self.start_step(step)

    def close(self) -> None:
        """Record a pending step and remove every hook: the model is left exactly as before."""
        self._flush()
        self.close_hooks()
        self._record = None
        self._buffer, self._scratch, self._norms = None, Scratch(), Norms()  # release workspaces
        self._total, self._kept_norms = partial(_total, self._scratch), Norms()

    def close_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> GradientProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- results ------------------------------------------------------------------------------

    def layer_table(self) -> pd.DataFrame:
        """The layers in forward order, as written to layers.csv."""
        rows = []
        for position, i in enumerate(self._forward_order()):
            layer = self._layers[i]
            fan_in, fan_out = fans(layer.weights[0])
            rows.append((position, layer.name, layer.kind, int(self._numel[i]), fan_in, fan_out))
        return pd.DataFrame(rows, columns=list(LAYER_COLUMNS))

    def frames(self) -> dict[str, pd.DataFrame]:
        """The rows recorded so far, one frame per table (with the default in-memory sink)."""
        if not isinstance(self._sink, MemorySink):
            raise TypeError("frames() needs the in-memory sink (sink=None)")
        return self._sink.frames()

    def locate_nonfinite(self) -> str | None:
        """The layer where NaN/Inf first appears, to say where a run diverged.

        Forward activations first, in forward order; else the layer nearest the output whose
        weight gradients hold NaN/Inf. Uses the latest step's record when it was probed; else it
        scans the current gradients (activations are not watched on unprobed steps).
        """
        order = self._forward_order()
        capture = self._capture
        metrics = self._metrics(capture, to_host(capture.pieces)) if capture else self._last
        if metrics is not None:
            found = [i for i in order if metrics.act_nonfinite[i]]
            found += [i for i in reversed(order) if metrics.layers["nonfinite"][i] > 0]
        else:
            found = [
                i
                for i in reversed(order)
                for w in self._layers[i].weights
                if w.grad is not None and not bool(torch.isfinite(w.grad).all())
            ]
        return self._layers[found[0]].name if found else None

    # -- hooks: armed only while a probed step runs (self._record is not None) -----------------

    def _on_layer_output(self, index: int, module: nn.Module, args: Any, output: Any) -> None:
        record = self._record
        if record is None or not torch.is_grad_enabled():
            return
        record.seen.setdefault(index)
        if not self._watch_outputs:
            return
        # RNN modules return (sequence, h_n), LSTMCell returns (h, c)
        out = output[0] if isinstance(output, tuple) else output
        values = out.data if isinstance(out, PackedSequence) else out
        call = record.calls[index]
        record.calls[index] += 1
        if record.detail and self._on["activations"]:
            self._settle(record)
            record.pending = (index, values.detach())
        timed = record.detail and self._on["time"] and index in self._timed
        if values.grad_fn is not None and (self._on["act_grads"] or timed):
            record.hooked.add(index)
            reduce = self._grad_reducer(index, out, record)
            # A pre-hook on the node that made the output sees dL/d(output) even if the output is
            # later modified in place; ~10× cheaper to register than Tensor.register_hook.
            reduce = reduce or (None if values.numel() <= _KEEP else self._total)
            hook = partial(_on_output_grad, record, index, call, values.output_nr, reduce)
            values.grad_fn.register_prehook(hook)

    def _on_recurrent_output(
        self, index: int, module: nn.RNNBase, args: Any, kwargs: Any, output: Any
    ) -> None:
        record = self._record
        if record is not None and record.detail and torch.is_grad_enabled():
            tape = recurrent.watch(module, args, kwargs, output)
            if tape is not None:
                record.tapes.append((index, tape))

    def _on_activation_output(
        self, shape: Shape, module: nn.Module, args: Any, output: Any
    ) -> None:
        record = self._record
        if record is None or record.pending is None or not torch.is_grad_enabled():
            return
        index, _ = record.pending
        record.pending = None  # claimed: the layer's own output is not needed
        self._describe(record, index, output, shape)

    def _settle(self, record: Record) -> None:
        """No activation module followed the pending layer: describe its own output."""
        if record.pending is not None:
            index, values = record.pending
            record.pending = None
            self._describe(record, index, values, RAW)

    def _describe(self, record: Record, index: int, output: Tensor, shape: Shape) -> None:
        """A layer's activation statistics, and on histogram steps its activation histogram."""
        with ONE_THREAD:
            record.stats.append(statistics(index, output, shape))
            if record.hist:
                record.hists.append((index, _ACT, log_histogram(output)))

    def _grad_reducer(
        self, index: int, out: Tensor | PackedSequence, record: Record
    ) -> Callable[[Tensor], Tensor] | None:
        """How the output gradient is reduced: to its norm (None), or to a norm per time step."""
        layer = self._layers[index]
        if not (self._on["time"] and record.detail and layer.fused_rnn):
            return None  # the whole output's norm
        if isinstance(out, PackedSequence):
            steps = len(out.batch_sizes)
            rows = torch.repeat_interleave(torch.arange(steps), out.batch_sizes)
            reduce = partial(packed_step_norms, rows.to(out.data.device), steps)
        else:
            time_dim = 1 if out.dim() == 3 and layer.module.batch_first else 0
            steps = out.shape[time_dim]
            reduce = partial(step_norms, [d for d in range(out.dim()) if d != time_dim])
        record.steps[index] = max(record.steps.get(index, 0), steps)
        return reduce

    # -- host side: one transfer per recorded step, then numpy over short vectors --------------

    def _read(
        self, step: int, record: Record | None, loss: Tensor | float, loss_scale: float
    ) -> _Capture:
        """capture() of a probed step: reductions launched on the device, one bool synced."""
        if record is not None:
            self._settle(record)
            if record.kept:
                norms = self._kept_norms([grad for _, _, grad in record.kept])
                kept = enumerate(record.kept)
                record.grads += [(i, c, norms[j : j + 1]) for j, (i, c, _) in kept]
                record.kept = []
            if record.hist:
                record.hists += [
                    (i, _GRAD, log_histogram(w.grad))
                    for i, layer in enumerate(self._layers)
                    for w in layer.weights
                    if w.grad is not None
                ]
        present = [i for i, p in enumerate(self._params) if p.grad is not None]
        grads = [g for p in self._params if (g := p.grad) is not None]
        # keep_step() (no record) stores the weights and the update as a detailed step would
        updates = self._on["updates"] and (record is None or record.detail) and self._weights
        weights = self._weights if updates else []
        # Gradients and weights in one call: one fused reduction per device/dtype group.
        with ONE_THREAD.released():
            both = self._norms([*grads, *weights])
        pieces = {"grads": both[: len(grads)]}
        if weights:
            pieces["weights"] = both[len(grads) :]
        if isinstance(loss, Tensor):
            pieces["loss"] = loss.detach().reshape(1)
        if record is not None:
            pieces.update(stack_record(record))
            pieces.update(recurrent.stack_tapes(record.tapes))
        nonfinite = np.zeros(len(self._params), dtype=np.int64)
        # capture()'s one host sync, a single bool: elements must be counted now, before clipping
        # rescales them, and only when a norm is not finite (a norm is finite iff its elements
        # are, barring overflow).
        if not bool(torch.isfinite(pieces["grads"]).all()):
            for i, grad in zip(present, grads, strict=True):
                nonfinite[i] = grad.numel() - int(torch.isfinite(grad).sum())
        return _Capture(
            step=step,
            record=record,
            pieces=pieces,
            loss=math.nan if isinstance(loss, Tensor) else float(loss),
            loss_scale=loss_scale,
            present=present,
            nonfinite=nonfinite,
            snapshot=self._snapshot() if updates else None,
        )

    def _snapshot(self) -> list[Tensor]:
        """The weights before optimizer.step(): what makes the update exact for any optimizer.

        One buffer, allocated once: fresh tensors would cost more in page faults than the copy
        itself (8–14 ms against about 1 ms for 13 MB on CPU).
        """
        buffer = self._buffer
        if buffer is None or buffer[0].device != self._weights[0].device:
            buffer = self._buffer = [torch.empty_like(w) for w in self._weights]
        torch._foreach_copy_(buffer, self._weights)
        return buffer

    def _flush(self) -> None:
        """Measure the update of the pending capture (if any) and emit its rows."""
        capture, self._capture = self._capture, None
        if capture is None:
            return
        pieces = dict(capture.pieces)
        if capture.snapshot is not None:
            with torch.no_grad():
                torch._foreach_sub_(capture.snapshot, self._weights)  # in place: no second copy
                with ONE_THREAD.released():
                    pieces["update"] = self._norms(capture.snapshot)
        self._last = self._metrics(capture, to_host(pieces))
        self._emit(capture.step, self._last)

    def _metrics(self, capture: _Capture, host: Mapping[str, np.ndarray]) -> _Metrics:
        n_layers = len(self._layers)
        per_layer = partial(np.bincount, self._pair_layer, minlength=n_layers)
        layer_norm = partial(combine_host, groups=self._pair_layer, n_groups=n_layers)
        trainable = self._pair_param >= 0
        grad = np.zeros(len(self._params))  # norm per parameter; no .grad: 0
        grad[capture.present] = host["grads"]
        layers = dict.fromkeys(LAYER_METRICS, np.full(n_layers, np.nan))
        layers["nonfinite"] = per_layer(np.where(trainable, capture.nonfinite[self._pair_param], 0))
        if self._on["weights"]:
            grad_norm = layer_norm(np.where(trainable, grad[self._pair_param], 0.0))
            layers["grad_norm"] = np.where(per_layer(trainable) > 0, grad_norm, np.nan)
            layers["grad_rms"] = layers["grad_norm"] / np.sqrt(self._numel)
        if "weights" in host:
            layers["weight_norm"] = layer_norm(host["weights"][self._pair_weight])
        if "update" in host:
            update = layer_norm(host["update"][self._pair_weight])
            layers["update_ratio"] = update / layers["weight_norm"]
        act_nonfinite, time = np.zeros(n_layers, dtype=bool), {}
        record = capture.record
        if record is not None and (record.hooked or record.tapes):  # else nothing was watched
            act_grad_norm, series = output_grad_metrics(
                record, host, n_layers, capture.loss_scale, self._cells
            )
            # a cell's output gradient is ∂L/∂h_t (later steps are later calls); a fused
            # layer's is only the direct part, its ∂L/∂h_t comes from recurrent.py
            time = recurrent.time_series(record.tapes, host, capture.loss_scale)
            for i, values in series.items():
                column = recurrent.HIDDEN if i in self._cells else recurrent.OUTPUT
                time.setdefault(column, {})[i] = values
            if self._on["act_grads"]:
                layers["act_grad_norm"] = act_grad_norm
        if record is not None and record.stats:
            stats = activation_metrics(record.stats, host, n_layers)
            act_nonfinite = stats.pop("act_nonfinite")
            layers.update(stats)
        return _Metrics(
            loss=float(host["loss"][0]) if "loss" in host else capture.loss,
            grad_total_norm=float(combine_host(grad, np.zeros(len(grad), np.int64), 1)[0]),
            nonfinite=int(capture.nonfinite.sum()),
            layers=layers,
            act_nonfinite=act_nonfinite,
            time=time if self._on["time"] and (record is None or record.detail) else {},
            hist=self._hist(record, host) if record is not None and record.hist else None,
        )

    def _hist(self, record: Record, host: Mapping[str, np.ndarray]) -> np.ndarray:
        keys = [(index, quantity) for index, quantity, _ in record.hists]
        return layer_counts(keys, host.get("hist", np.zeros(0)), len(self._layers))

    def _emit(self, step: int, metrics: _Metrics) -> None:
        order = np.array(self._forward_order(), dtype=np.int64)
        if len(order):
            rows = {"step": step, "layer": np.arange(len(order))}
            rows.update({name: values[order] for name, values in metrics.layers.items()})
            self._sink.append("layers", typed("layers", rows, len(order)))
        steps = {
            "step": step,
            "loss": metrics.loss,
            "grad_total_norm": metrics.grad_total_norm,
            "nonfinite": metrics.nonfinite,
        }
        self._sink.append("steps", typed("steps", steps, 1))
        time = recurrent.time_rows(step, order, metrics.time)
        if time is not None:
            self._sink.append("time", typed("time", time, len(time["t"])))
        if metrics.hist is not None:
            self._sink.append("hist", hist_rows(step, metrics.hist[order]))

    def _forward_order(self) -> list[int]:
        return self._order if self._order is not None else list(range(len(self._layers)))


def _total(scratch: Scratch, grad: Tensor) -> Tensor:
    """An output gradient's norm, as a 1-element vector like the per-time-step norms."""
    return tensor_norm(grad, scratch).reshape(1)


def _on_output_grad(
    record: Record,
    index: int,
    call: int,
    slot: int,
    reduce: Callable[[Tensor], Tensor] | None,
    grad_outputs: tuple[Tensor | None, ...],
) -> None:
    grad = grad_outputs[slot]
    if grad is None:  # no gradient reached this output of the node
        return
    if reduce is None:
        record.kept.append((index, call, grad))  # its norm comes with the others at capture
        if not record.hist:
            return
    with ONE_THREAD:
        if reduce is not None:
            record.grads.append((index, call, reduce(grad)))
        if record.hist:
            record.hists.append((index, _ACT_GRAD, log_histogram(grad)))
