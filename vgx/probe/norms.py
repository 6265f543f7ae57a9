"""Exact Euclidean norms for the probe: float64 accumulation, scaled where float64 squares fail.

Why float64: a float32 sum of 16 M squares is 1e-4 off (BLAS `sdot` reads a Linear(4096, 4096)
gradient's norm as 7.2482 for 7.2489), and the square of a float32 below ~1e-19 is subnormal or 0
(and 7–35× slower on x86 CPUs). The square of every float32 or half value is exact in float64 and
cannot over- or underflow there, and 2^26 of them add up to within ~1e-9 relative: tensors of a
float32 model need nothing more.

Why scaled: float64 squares overflow past ~1e154 and lose precision below ~1e-154, so a float64
tensor whose plain sum of squares leaves the safe range is first divided by the power of two just
below its largest |x| (LAPACK's dnrm2 scales by the largest |x| the same way; a power of two
makes the division exact). Everything leaving this module is a norm, never a square, and norms
combine (`combine`) scaled by the largest, so 1e-300 and 1e300 survive the per-layer sums too.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils._foreach_utils import _group_tensors_by_device_and_dtype

# float64 elements per pass on CPU: 4 MB of scratch. The float32 → float64 copy is what costs;
# measured on 2 threads, 2^17–2^21 elements per pass all took about the same time for 16 M.
_CHUNK = 1 << 19
# Tensors this small go to one fused _foreach_norm(dtype=float64) call: 52 tensors of 256
# elements took 0.11 ms that way against 0.25 ms one by one; 52 of 65,536 took 2.5 ms against 1.2.
_SMALL = 1 << 12
# Norms sums float32 squares ROW at a time in float32 (the bound (ROW/2)·2^-24 = 9.54e-7 must stay
# below 1e-6) and trusts a float32 Σx² of n elements from n · TRUST up (see Norms).
ROW = 32
# Columns of a tensor's (ROW, M) block squared per pass: a 512 KB scratch that stays in cache (a
# scratch as large as a 4096 × 4096 gradient made its read 5× slower: page faults, memory).
PIECE = 1 << 12
TRUST = 2.0**-110
# A tensor that needed the exact path is read exactly on the next call too, unless its Σx² is back
# above n · RETRY: reading subnormal squares first would cost 7–35× (x86).
RETRY = 2.0**-90
# float32 tensors above this many elements are read in chunks by tensor_norm on the exact path: a
# fused float64 reduction took 13.6 ms for 2^22 elements against 1.1 ms (0.25 ms each at 2^20).
_HUGE = 1 << 20
# Plans kept per Norms: one per list of sizes seen (gradients, weights, output gradients, ...).
_PLANS = 8
# A plain float64 Σx² in [numel · 2^-1045, overflow) lost at most 2^-30 of itself to subnormal
# squares (each rounds by at most 2^-1075): trusted; anything else is recomputed scaled.
_FLOOR = 2.0**-1045


class Scratch:
    """Reusable buffers (one per dtype and device), grown to the largest request.

    With 2 CPU threads, fresh temporaries cost about as much as the reductions themselves
    (first-touch page faults); a buffer holds no data beyond one call.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def like(self, values: Tensor, dtype: torch.dtype) -> Tensor:
        """A flat `dtype` buffer with the size and device of `values`."""
        key = (dtype, values.device)
        n, buffer = values.numel(), self._buffers.get(key)
        if buffer is None or buffer.numel() < n:
            buffer = self._buffers[key] = torch.empty(n, dtype=key[0], device=key[1])
        return buffer[:n]


def scaled_norm(values: Tensor, dims: list[int] | None = None) -> Tensor:
    """‖x‖₂ in float64 (over `dims`, else all) for any float64 magnitude, without a host sync.

    x is divided by 2^(e−1) ≤ max |x| < 2^e first, so its squares are at most 4 per element;
    elements below max |x| · 2^-510 may underflow, and they weigh less than 2^-1020 of the sum.
    """
    x = values.detach().double()
    if x.numel() == 0:
        return torch.linalg.vector_norm(x, dim=dims)
    top = torch.linalg.vector_norm(x, ord=torch.inf, dim=dims, keepdim=True)
    _, exponent = torch.frexp(top)  # top = m · 2^e with 0.5 ≤ m < 1; 0, Inf, NaN: e = 0
    scale = torch.ldexp(torch.ones_like(top), exponent - 1)  # finite: 2^-1074 … 2^1023
    norm = torch.linalg.vector_norm(x / scale, dim=dims)
    return norm * scale.reshape(norm.shape)


def tensor_norm(values: Tensor, scratch: Scratch) -> Tensor:
    """‖x‖₂ of one tensor as a 0-d float64 tensor, exact for every float32 and float64 value.

    CPU: float32 (half) up to _HUGE elements by one float64 reduction, larger ones in chunks
    copied into a float64 scratch, then a BLAS dot; float64 by a plain dot when its result is in
    the safe range, else scaled. Other devices convert inside the reduction (float64: always
    scaled, a range check would cost a host sync).
    """
    flat = values.detach().reshape(-1)
    if flat.dtype != torch.float64 and (flat.device.type != "cpu" or flat.numel() <= _HUGE):
        return torch.linalg.vector_norm(flat, dtype=torch.float64)
    if flat.device.type != "cpu":
        return scaled_norm(flat)
    if flat.dtype == torch.float64:
        square = torch.vdot(flat, flat)
        safe = flat.numel() * _FLOOR <= float(square) < np.inf  # on CPU: no device sync
        return square.sqrt() if safe else scaled_norm(flat)
    parts = []
    for start in range(0, max(flat.numel(), 1), _CHUNK):
        piece = flat[start : start + _CHUNK]
        exact = scratch.like(piece, torch.float64).copy_(piece)
        parts.append(torch.vdot(exact, exact))
    return (parts[0] if len(parts) == 1 else torch.stack(parts).sum()).sqrt()


class Norms:
    """‖x‖₂ of each tensor of a list (gradients, weights, updates) as one float64 vector.

    On CPU a float32 tensor is read once, at float32 speed: its first ROW·M elements, as a
    (ROW, M) block, are squared into a scratch buffer that stays in cache, and the block's ROW
    rows are added in float32 (a vectorised sum down the columns: M partial sums of ROW squares
    each), then the partial sums in float64. A partial sum is within ROW·u of its value (u =
    2^-24: u for the squares' roundings, (ROW − 1)·u for a sum of ROW terms in any order, with
    no higher-order term by Jeannerod & Rump 2013), so Σx² is too and its root is within
    ROW·u/2 ≈ 9.54e-7 relative for ROW = 32 (the float64 stage adds ~1e-13). 52 gradients of
    256 × 256 one after another, one thread: 0.77 ms, against 1.11 ms for float32 norms of rows
    of 31 (the previous reader, whose float32 root cost one more rounding), 0.47 ms for an
    inexact float32 `_foreach_norm` and 1.85 ms for one in float64.
    Squares below 2^-126 lose bits and those below 2^-149 vanish: at most n · 2^-149 in all, so a
    result is kept when Σx² ≥ n · TRUST (then that loss is < 2^-39 of it) and is finite; anything
    else (vanished or huge gradients) is recomputed by the exact float64 path (tensor_norm).
    Small tensors and the last numel mod ROW elements go to one fused float64 reduction.
    """

    def __init__(self) -> None:
        self._scratch = Scratch()
        self._plans: dict[tuple[tuple[int, torch.dtype], ...], _Plan] = {}

    def __call__(self, tensors: list[Tensor]) -> Tensor:
        if not tensors:
            return torch.zeros(0, dtype=torch.float64)
        if not all(t.is_cpu for t in tensors):
            return _device_norms(tensors)
        key = tuple((t.numel(), t.dtype) for t in tensors)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _PLANS:  # sizes that change every step (sequence lengths)
                del self._plans[next(iter(self._plans))]
            plan = self._plans[key] = _Plan(key)
        with torch.no_grad():  # no detach() per tensor: 1.4 µs each, ~100 a step
            return self._read(tensors, key, plan)

    def _read(
        self, tensors: list[Tensor], key: tuple[tuple[int, torch.dtype], ...], plan: _Plan
    ) -> Tensor:
        squares = torch.zeros(len(tensors), dtype=torch.float64)
        for i, shape, pieces in plan.blocked:
            if i not in plan.exact:
                block = _block(tensors[i], shape)
                for start, scratch, out in pieces:
                    piece = block if len(pieces) == 1 else block[:, start : start + len(out)]
                    torch.sum(torch.mul(piece, piece, out=scratch), 0, out=out)
        for owners, block in plan.blocks:  # float64 sums of the partial sums
            squares[owners] = torch.sum(block, 1, dtype=torch.float64)
        small = [tensors[i].reshape(-1) for i in plan.small]
        small += [_tail(tensors[i], cut) for i, cut in plan.remainders]
        if small:  # side by side in one buffer, then one float64 reduction per run of equal sizes
            torch.cat(small, out=plan.joined)
            for owners, block in plan.runs:
                norms = torch.linalg.vector_norm(block, dim=1, dtype=torch.float64)
                squares.index_add_(0, owners, norms.square_())
        exact = {i: tensor_norm(tensors[i], self._scratch) for i in plan.float64}
        if plan.blocked:  # one host read (CPU: no device sync) for the check
            values = squares.tolist()
            trusted = [i for i, *_ in plan.blocked if key[i][0] * TRUST <= values[i] < np.inf]
            redo = sorted({i for i, *_ in plan.blocked} - set(trusted) | plan.exact)
            if redo:
                flats = [tensors[i].reshape(-1) for i in redo]
                exact.update(zip(redo, self._exact(flats), strict=True))
                values = torch.stack([exact[i] for i in redo]).tolist()
                again = [v**2 >= key[i][0] * RETRY for i, v in zip(redo, values, strict=True)]
                # read exactly next step too while the squares stay out of float32's range
                plan.exact = {i for i, ok in zip(redo, again, strict=True) if not ok}
        result = squares.sqrt_()
        for i, norm in exact.items():
            result[i] = norm
        return result

    def _exact(self, flats: list[Tensor]) -> list[Tensor]:
        """float64 norms of float32 tensors: fused below _HUGE elements, else in chunks."""
        mid = [f for f in flats if f.numel() <= _HUGE]
        fused = iter(torch._foreach_norm(mid, 2, dtype=torch.float64) if mid else ())
        return [next(fused) if f.numel() <= _HUGE else tensor_norm(f, self._scratch) for f in flats]


class _Plan:
    """How Norms reads a list of CPU tensors of these sizes and dtypes (fixed for a model)."""

    def __init__(self, key: tuple[tuple[int, torch.dtype], ...]) -> None:
        self.float64 = [i for i, (_, dtype) in enumerate(key) if dtype == torch.float64]
        self.exact: set[int] = set()  # blocked tensors to read exactly at once (see RETRY)
        blocked = [i for i, (n, dtype) in enumerate(key) if dtype == torch.float32 and n > _SMALL]
        cuts = [key[i][0] - key[i][0] % ROW for i in blocked]
        self.partials = torch.empty(sum(cuts) // ROW)  # float32 partial sums of ROW squares
        squares = torch.empty(ROW * PIECE)  # one piece of one tensor at a time
        views = self.partials.split([cut // ROW for cut in cuts])
        shapes = [(ROW, cut // ROW) for cut in cuts]
        pieces = [
            [(a, squares[: ROW * len(o)].view(ROW, len(o)), o) for a, o in _pieces(view)]
            for view in views
        ]
        self.blocked = list(zip(blocked, shapes, pieces, strict=True))
        # runs of tensors as long, whose partial sums lie side by side: one (k, M) block each
        self.blocks = [
            (torch.tensor(run_owners), block.view(len(run_owners), -1))
            for run_owners, block in _runs(blocked, [c // ROW for c in cuts], self.partials)
        ]
        self.small = [
            i for i, (_, dtype) in enumerate(key) if dtype != torch.float64 and i not in blocked
        ]
        ends = zip(blocked, cuts, strict=True)
        self.remainders = [(i, cut) for i, cut in ends if cut < key[i][0]]
        owners = self.small + [i for i, _ in self.remainders]
        sizes = [key[i][0] for i in self.small] + [key[i][0] - cut for i, cut in self.remainders]
        self.joined = torch.empty(sum(sizes))  # float32 (a half tensor's values are exact in it)
        self.runs = [
            (torch.tensor(run_owners), block.view(len(run_owners), -1))
            for run_owners, block in _runs(owners, sizes, self.joined)
        ]


def _pieces(partials: Tensor) -> list[tuple[int, Tensor]]:
    """A tensor's partial sums split into runs of at most PIECE columns: (first column, run)."""
    return [(a, partials[a : a + PIECE]) for a in range(0, len(partials), PIECE)]


def _block(tensor: Tensor, shape: tuple[int, int]) -> Tensor:
    """The first shape[0] · shape[1] elements of `tensor` as a block: a view straight from a
    contiguous tensor (one call instead of flatten, slice and view), else of its flattened copy."""
    if tensor.is_contiguous():
        return tensor.as_strided(shape, (shape[1], 1))
    return tensor.reshape(-1)[: shape[0] * shape[1]].view(shape)


def _tail(tensor: Tensor, cut: int) -> Tensor:
    """The elements of `tensor` from flat index `cut` on, as a flat view where it is contiguous."""
    if tensor.is_contiguous():
        return tensor.as_strided((tensor.numel() - cut,), (1,), tensor.storage_offset() + cut)
    return tensor.reshape(-1)[cut:]


def _runs(owners: list[int], sizes: list[int], flat: Tensor) -> list[tuple[list[int], Tensor]]:
    """Consecutive stretches of `flat` holding tensors of one size: (their owners, the stretch)."""
    runs, start, offset = [], 0, 0
    for end in range(1, len(sizes) + 1):
        if end == len(sizes) or sizes[end] != sizes[start]:
            length = (end - start) * sizes[start]
            runs.append((owners[start:end], flat[offset : offset + length]))
            offset += length
            start = end
    return runs


def _device_norms(tensors: list[Tensor]) -> Tensor:
    """Norms on any device: one fused reduction per device and dtype group, float64 scaled."""
    out = torch.empty(len(tensors), dtype=torch.float64, device=tensors[0].device)
    nested: list[list[Tensor | None]] = [list(tensors)]  # torch types its lists as optional
    groups = _group_tensors_by_device_and_dtype(nested, with_indices=True)
    for (_, dtype), ((optional,), indices) in groups.items():
        group = [t for t in optional if t is not None]  # none is None: all came from `tensors`
        if dtype == torch.float64:
            norms = torch.stack([scaled_norm(t) for t in group])
        else:
            norms = torch.stack(torch._foreach_norm(group, 2, dtype=torch.float64))
        if len(groups) == 1:  # one device and dtype, the usual case: already in order
            return norms
        out[indices] = norms.to(out.device)
    return out


def step_norms(dims: list[int], grad: Tensor) -> Tensor:
    """‖x‖₂ per time step (the dimension not in `dims`), float64."""
    if grad.dtype == torch.float64:
        return scaled_norm(grad, dims)
    return torch.linalg.vector_norm(grad.double(), dim=dims)


def packed_step_norms(rows: Tensor, steps: int, grad: Tensor) -> Tensor:
    """‖x‖₂ per time step of a PackedSequence's data (`rows` gives each row's time step)."""
    return combine(step_norms([1], grad), rows, steps)


def combine(norms: Tensor, groups: Tensor, n_groups: int) -> Tensor:
    """‖(norms in group g)‖₂ for g < n_groups, each scaled by its group's largest norm.

    A NaN makes its group NaN, else an Inf makes it Inf, as a plain sum of squares would; an
    empty group is 0. No host sync: the per-step divergence check reads the total on the device.
    """
    top = norms.new_zeros(n_groups).scatter_reduce_(0, groups, norms, "amax")
    scale = torch.where((top > 0) & torch.isfinite(top), top, 1.0)
    squares = (norms / scale[groups]).square()
    return norms.new_zeros(n_groups).index_add_(0, groups, squares).sqrt() * scale


def combine_host(norms: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """`combine` of host arrays (per-layer sums of per-tensor norms), in numpy: no torch call
    per group for vectors this short."""
    top = np.zeros(n_groups)
    with np.errstate(invalid="ignore", over="ignore"):
        np.maximum.at(top, groups, norms)  # NaN propagates, as in combine
        scale = np.where((top > 0) & np.isfinite(top), top, 1.0)
        squares = np.bincount(groups, weights=(norms / scale[groups]) ** 2, minlength=n_groups)
    return np.sqrt(squares) * scale


def total_norm(norms: Tensor) -> Tensor:
    """‖all‖₂ of a vector of norms as a 0-d tensor (no host sync)."""
    return combine(norms, torch.zeros_like(norms, dtype=torch.int64), 1)[0]
