"""Mean-field theory of wide random MLPs: how fast gradients should vanish or explode with depth.

Weights are N(0, σ_w²/fan_in), biases N(0, σ_b²), pre-activations h^l of width N → ∞ are Gaussian
with second moment q^l (Poole et al. 2016, eq. 3; Schoenholz et al. 2017, §2-3):

    length map   q^{l+1} = σ_w² E_z[φ(√q^l z)²] + σ_b²,   z ~ N(0, 1); fixed point q*
    gradients    E‖δ^l‖² = σ_w² E_z[φ'(√q^l z)²] · E‖δ^{l+1}‖²,   χ₁ = σ_w² E[φ'(√q* z)²]

where δ^l = ∂L/∂h^l is the back-propagated gradient at layer l's pre-activation (the output of its
Linear module, what the probe records as `act_grad_norm`). The factor χ acts on the SQUARED norm,
so the norm changes by √χ per layer: moving from the output toward the input, log10‖δ‖ changes by
log10(χ)/2 per layer. Every slope in vgx uses that convention: "decades per layer, from the output
toward the input"; negative means vanishing. On a plot over forward layer index the line is
log10‖δ^l‖ = log10‖δ^L‖ + slope · (L − l).

Expectations are Gaussian quadrature over φ taken from the ACTIVATIONS registry, φ' by autograd, so
a new activation needs no code here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from numpy.polynomial.legendre import leggauss
from omegaconf import DictConfig, OmegaConf

from vgx.config import DataConfig, flatten, to_dict
from vgx.models import ACTIVATIONS, INITS, SKIPS, resolve_init

# Panels of z = 0 … 10 on each side, graded toward 0 where ReLU-like activations have kinks and
# saturating ones at large q change fastest; NODES Gauss-Legendre nodes per panel.
PANEL_EDGES = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 4.0, 10.0)  # N(0, 1) mass beyond 10: 1.5e-23
NODES = 24
Q_MIN, Q_MAX = 1e-12, 1e8  # lengths are clipped here: q* = 0 is evaluated as its limit q → 0⁺
Q_GRID = np.logspace(math.log10(Q_MIN), math.log10(Q_MAX), 401)
THEORY_KEYS = ("chi1", "q_star", "predicted_slope", "predicted_decades_lost_act")
MARGINAL = 1e-9  # |q_next/q − 1| below this: every q is a fixed point (ReLU at σ_w² = 2, σ_b² = 0)


@lru_cache(maxsize=1)
def _quadrature() -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes z and weights w with Σ w f(z) ≈ E_{z~N(0,1)}[f(z)] for f smooth on each side of 0.

    Composite Gauss-Legendre split at 0 rather than Gauss-Hermite: Hermite's error with 100 nodes
    is 4% for softsign's E[φ'²] at q = 0.7 and 80% at q = 100 (a kink at 0, steep saturation);
    these panels stay within 1e-6 (relative) for every registered activation up to q = 1e4.
    """
    x, w = leggauss(NODES)
    lo, hi = np.array(PANEL_EDGES[:-1])[:, None], np.array(PANEL_EDGES[1:])[:, None]
    half_z, half_w = ((hi - lo) / 2 * (x + 1) + lo).ravel(), ((hi - lo) / 2 * w).ravel()
    z = np.concatenate([-half_z[::-1], half_z])
    weights = np.concatenate([half_w[::-1], half_w]) * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return torch.from_numpy(z), torch.from_numpy(weights)


def activation_and_slope(act: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """φ(x) and φ'(x) elementwise for a registered activation, φ' by autograd (float64)."""
    module = ACTIVATIONS[act]().double()
    x = x.detach().double().requires_grad_(True)
    y = module(x)
    (slope,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), slope


def gaussian_moments(act: str, q: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E[φ(√q z)²], E[φ'(√q z)²]) for each length q, by Gauss-Hermite quadrature."""
    z, w = _quadrature()
    lengths = np.clip(np.atleast_1d(np.asarray(q, dtype=np.float64)), Q_MIN, Q_MAX)
    phi, slope = activation_and_slope(act, torch.from_numpy(lengths).sqrt()[:, None] * z[None, :])
    return (phi.square() @ w).numpy(), (slope.square() @ w).numpy()


def length_map(act: str, sigma_w2: float, sigma_b2: float, q: float | np.ndarray) -> np.ndarray:
    """q^{l+1} from q^l (Poole et al. 2016, eq. 3)."""
    return sigma_w2 * gaussian_moments(act, q)[0] + sigma_b2


def chi(act: str, sigma_w2: float, q: float | np.ndarray) -> np.ndarray:
    """Per-layer factor of the squared gradient norm at length q (Schoenholz et al. 2017, eq. 5)."""
    return sigma_w2 * gaussian_moments(act, q)[1]


def fixed_point(act: str, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """The q* the length map reaches from q0: 0 if it contracts to 0, inf if it grows unbounded.

    Found on a log grid of q then by bisection, not by iterating: at critical points (tanh at
    σ_w² = 1, σ_b² = 0) the iteration approaches q* = 0 only as 1/(2l).
    """

    def excess(q: float | np.ndarray) -> np.ndarray:  # relative growth of q in one layer
        return length_map(act, sigma_w2, sigma_b2, q) / np.clip(q, Q_MIN, Q_MAX) - 1

    start = float(excess(q0)[0])
    if abs(start) < MARGINAL:
        return q0
    grid = excess(Q_GRID)
    if start > 0:  # q grows to the first point above q0 where it stops growing
        ahead = np.flatnonzero((q0 < Q_GRID) & (grid <= 0))
        if not ahead.size:
            return math.inf
        hi = float(Q_GRID[ahead[0]])
        lo = max(q0, float(Q_GRID[ahead[0] - 1]))
    else:  # q shrinks to the first point below q0 where it stops shrinking
        behind = np.flatnonzero((q0 > Q_GRID) & (grid >= 0))
        if not behind.size:
            return 0.0
        lo = float(Q_GRID[behind[-1]])
        hi = min(q0, float(Q_GRID[behind[-1] + 1]))
    for _ in range(30):  # bisection in log q keeps excess(lo) ≥ 0 ≥ excess(hi)
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if excess(mid)[0] > 0 else (lo, mid)
    return math.sqrt(lo * hi)


def chi1(act: str, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """χ₁ at the fixed point reached from q0: < 1 vanishing, 1 critical, > 1 exploding."""
    return float(chi(act, sigma_w2, fixed_point(act, sigma_w2, sigma_b2, q0))[0])


@lru_cache(maxsize=1024)  # the report asks once per run and again per plotted panel
def predicted_log10_grad_profile(
    act: str, sigma_w2: float, sigma_b2: float, depth: int, q0: float = 1.0
) -> np.ndarray:
    """Predicted log10‖δ^l‖ for the depth hidden layers and the output layer, output = 0.

    Forward order (index 0 = first layer). The length map is iterated from the input's second
    moment q0 (q^1 = σ_w² q0 + σ_b²) for the actual depth, so a slow approach to q* counts.
    """
    q = sigma_w2 * q0 + sigma_b2
    steps = np.empty(depth)
    for layer in range(depth):
        steps[layer] = 0.5 * math.log10(max(float(chi(act, sigma_w2, q)[0]), 1e-300))
        q = float(length_map(act, sigma_w2, sigma_b2, q)[0])
    profile = np.append(np.cumsum(steps[::-1])[::-1], 0.0)
    profile.flags.writeable = False  # cached: shared by every caller
    return profile


def fit_slope(log10_norms: np.ndarray | list[float]) -> float:
    """Least-squares slope of log10 norms given in forward order, in decades per layer from the
    output toward the input (negative: vanishing); NaN with fewer than two finite values."""
    values = np.asarray(log10_norms, dtype=np.float64)
    toward_input = np.arange(len(values))[::-1].astype(np.float64)
    finite = np.isfinite(values)
    if finite.sum() < 2:
        return math.nan
    return float(np.polyfit(toward_input[finite], values[finite], 1)[0])


def _flat(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """A run config (composed, nested or already flat as in summary.csv) as one flat dict."""
    return flatten(to_dict(cfg) if isinstance(cfg, DictConfig) else dict(cfg))


@lru_cache(maxsize=32)
def _input_moments(data_items: tuple[tuple[str, Any], ...]) -> tuple[int, float]:
    """(n_features, mean squared input entry) of a vector dataset, from its config items."""
    from vgx.data import load_dataset

    data = load_dataset(OmegaConf.create(dict(data_items)), 1)
    return data.n_features, float(data.x_train.double().square().mean())


def _data_items(flat: Mapping[str, Any]) -> tuple[tuple[str, Any], ...] | None:
    """The data config of a flat row, defaults filled in; None when the row names no data."""
    if not flat.get("data"):
        return None
    items = {f.name: getattr(DataConfig, f.name, None) for f in fields(DataConfig)}
    for key, value in flat.items():
        if key.startswith("data.") and key[5:] in items:
            items[key[5:]] = _like(items[key[5:]], value)
    items["name"] = flat["data"]
    return tuple(sorted(items.items()))


def _like(default: Any, value: Any) -> Any:
    """A table value in its field's type: summary.csv columns with gaps turn ints into floats."""
    if isinstance(value, float) and math.isnan(value):
        return default
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
        return int(value)
    return value


def _mlp_theory_inputs(
    cfg: Mapping[str, Any] | DictConfig, q0: float | None
) -> tuple[str, str, float, float, int, float] | None:
    """(skip, act, σ_w², σ_b², depth, q0) of an MLP config without normalisation; None where the
    theory does not apply."""
    flat = _flat(cfg)
    model, norm, skip = (
        flat.get(k, d) for k, d in (("model", "mlp"), ("norm", "none"), ("skip", "none"))
    )
    if model != "mlp" or norm != "none" or skip not in SKIPS:
        return None  # CNN, RNN, normalisation: not these mean-field maps
    act, init = flat.get("act"), flat.get("init", "default")
    if act not in ACTIVATIONS or not isinstance(act, str) or init not in INITS:
        return None
    variance = resolve_init(init, act).variance  # vgx.models.init: each init's σ_w², σ_b²
    width, std = int(flat["width"]), float(flat.get("init_std", 0.05))
    sigma_w2, sigma_b2 = variance(width, width, std)
    if q0 is None:
        items = _data_items(flat)
        n_in, moment = _input_moments(items) if items else (width, 1.0)
        # The first layer has fan_in = n_features: fold its own σ_w² into the input length so the
        # first hidden layer gets its true q¹ (its bias variance is taken as the hidden layers').
        q0 = moment * variance(n_in, width, std)[0] / sigma_w2
    return skip, act, sigma_w2, sigma_b2, int(flat["depth"]), q0


def _profile(skip: str, *inputs: Any) -> np.ndarray:
    if skip == "none":
        return predicted_log10_grad_profile(*inputs)
    return predicted_block_profile(skip, *inputs)[0]


def predicted_profile(
    cfg: Mapping[str, Any] | DictConfig, q0: float | None = None
) -> np.ndarray | None:
    """Predicted log10‖δ‖ of every Linear layer of the config's MLP, relative to the output layer,
    in forward order: the report's gradient-vs-layer x axis (layers.csv `layer`, no norm layers).

    `cfg` is a composed config or a flat summary row (keys act, init, init_std, width, depth,
    model, norm, skip, data...); q0 defaults to the dataset's mean squared input (1 without data).
    Plain, residual and pre-activation MLPs; None where the theory does not apply: CNN, RNN
    family, normalisation.
    """
    inputs = _mlp_theory_inputs(cfg, q0)
    return None if inputs is None else _profile(*inputs)


def predicted_block_growth(
    cfg: Mapping[str, Any] | DictConfig, q0: float | None = None
) -> np.ndarray | None:
    """Each block's growth of the squared gradient norm at init, from its output back to its
    input, for a residual or pre-activation MLP (depth − 1 blocks, forward order); None for
    plain nets and where the theory does not apply."""
    inputs = _mlp_theory_inputs(cfg, q0)
    if inputs is None or inputs[0] == "none":
        return None
    return predicted_block_profile(*inputs)[1]


def predicted_slope(cfg: Mapping[str, Any] | DictConfig, q0: float | None = None) -> float | None:
    """Predicted decades per layer (output → input) of ‖δ‖ at init, fitted over the real depth;
    None where the theory does not apply (see predicted_profile)."""
    profile = predicted_profile(cfg, q0)
    return None if profile is None else fit_slope(profile)


def theory_summary(
    cfg: Mapping[str, Any] | DictConfig, q0: float | None = None
) -> dict[str, float]:
    """Columns for summary.csv: `chi1`, `q_star` (plain MLPs: the fixed point q* of the length
    map, the second moment of every layer's pre-activations deep in a wide net at init),
    `predicted_slope` (decades per layer, output → input) and `predicted_decades_lost_act` (log10
    last/first layer ‖∂L/∂h‖, comparable with `decades_lost_act_init`); NaN where the theory does
    not apply."""
    inputs = _mlp_theory_inputs(cfg, q0)
    return dict.fromkeys(THEORY_KEYS, math.nan) if inputs is None else dict(_summary(*inputs))


@lru_cache(maxsize=1024)  # a sweep's runs share few configs; the report asks for every run
def _summary(
    skip: str, act: str, sigma_w2: float, sigma_b2: float, depth: int, start: float
) -> dict[str, float]:
    profile = _profile(skip, act, sigma_w2, sigma_b2, depth, start)
    predicted = {
        "predicted_slope": fit_slope(profile),
        "predicted_decades_lost_act": -float(profile[0]),
    }
    if skip != "none":  # the residual stream has no fixed point: its length grows every block
        return {"chi1": math.nan, "q_star": math.nan, **predicted}
    q_star = fixed_point(act, sigma_w2, sigma_b2, start * sigma_w2 + sigma_b2)
    return {"chi1": float(chi(act, sigma_w2, q_star)[0]), "q_star": q_star, **predicted}


# ---- residual nets: the two published blocks (He et al. 2016), MLP, norm=none -------------------
# Squared gradient norms per Linear output, from the head back: through Wᵀ a norm changes by σ_w²,
# through φ' by E[φ'²] (equal widths; δ independent of the weights, as in the plain theory). The
# stream of a pre-activation net is a sum of independent Gaussians. That of the basic block is
# x = φ(z), z = x + W₂φ(W₁x): not Gaussian, and along the identity path a unit's φ'(z) of one
# block depends on its φ'(z) of the next (a unit that is on tends to stay on), so each unit's z is
# carried as a Markov chain over STREAM_POINTS quantiles per block. Without the chain, products of
# independent E[φ'²] put a 7-block ReLU net at PyTorch's default init 0.25 decades off autograd.
STREAM_POINTS = 256


def _gaussian_points(q: float) -> tuple[np.ndarray, np.ndarray]:
    z, w = _quadrature()
    return math.sqrt(max(q, Q_MIN)) * z.numpy(), w.numpy()


def _quantiles(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """STREAM_POINTS equally likely points standing for a weighted sample (mid-quantiles)."""
    order = np.argsort(values)
    values, weights = values[order], weights[order] / weights.sum()
    middle = np.cumsum(weights) - weights / 2
    return np.interp((np.arange(STREAM_POINTS) + 0.5) / STREAM_POINTS, middle, values)


def _transition(x: np.ndarray, std: float, points: np.ndarray) -> np.ndarray:
    """P(z' in the cell of each of `points` | x), z' = x + N(0, std²): rows sum to 1."""
    edges = np.concatenate([[-np.inf], (points[1:] + points[:-1]) / 2, [np.inf]])
    cdf = torch.special.ndtr(torch.from_numpy((edges[None, :] - x[:, None]) / max(std, 1e-300)))
    return np.diff(cdf.numpy(), axis=1)


def _basic_profile(
    act: str, sigma_w2: float, sigma_b2: float, q_stem: float, blocks: int
) -> tuple[list[float], np.ndarray]:
    """Squared ‖δ‖ of each Linear output (forward, head = 1) and each block's growth."""
    g, v = _gaussian_points(1.0)
    points = [_quantiles(*_gaussian_points(q_stem))]  # z of the stem, then of each block
    moves, branch = [], []  # transition matrices; χ(q₁) of each block
    for _ in range(blocks):
        x = activation_and_slope(act, torch.from_numpy(points[-1]))[0].numpy()
        q1 = sigma_w2 * float(np.mean(x * x)) + sigma_b2
        std = math.sqrt(float(length_map(act, sigma_w2, sigma_b2, q1)[0]))
        nxt = (x[:, None] + std * g[None, :]).ravel()
        points.append(_quantiles(nxt, np.broadcast_to(v, (len(x), len(v))).ravel()))
        moves.append(_transition(x, std, points[-1]))
        branch.append(float(chi(act, sigma_w2, q1)[0]))
    slopes = [activation_and_slope(act, torch.from_numpy(p))[1].numpy() ** 2 for p in points]
    # V[s]: E[δ² at the output of the unit's block | its z = s]; the head's Wᵀ gives σ_w².
    value, squared, growth = np.full(STREAM_POINTS, sigma_w2), [1.0], np.empty(blocks)
    for index in reversed(range(blocks)):
        through = slopes[index + 1] * value  # E[δ_z² | z]: W₂'s output
        d = float(through.mean())
        squared += [d, branch[index] * d]
        before = moves[index] @ through + sigma_w2 * branch[index] * d
        growth[index] = float(before.mean()) / float(value.mean())
        value = before
    squared.append(float((slopes[0] * value).mean()))  # the stem's output
    return squared, growth


@lru_cache(maxsize=256)
def predicted_block_profile(
    skip: str, act: str, sigma_w2: float, sigma_b2: float, depth: int, q0: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted log10‖δ‖ of every Linear output of a residual MLP, output = 0, forward order
    (stem, W₁ and W₂ of each of the depth − 1 blocks, head), and each block's growth of the
    squared gradient norm from its output back to its input (its 'per-block growth')."""
    q_stem, blocks = sigma_w2 * q0 + sigma_b2, depth - 1
    squared = [1.0]  # head output, then backward
    growth = np.empty(blocks)
    if skip == "preact":
        q, forward = q_stem, []
        for _ in range(blocks):
            q1 = float(length_map(act, sigma_w2, sigma_b2, q)[0])
            forward.append((float(chi(act, sigma_w2, q)[0]), float(chi(act, sigma_w2, q1)[0])))
            q += float(length_map(act, sigma_w2, sigma_b2, q1)[0])
        stream = float(chi(act, sigma_w2, q)[0])  # final φ, then the head's Wᵀ
        for index, (a, c) in reversed(list(enumerate(forward))):
            squared += [stream, c * stream]  # W₂'s output, W₁'s output
            growth[index] = 1 + a * c
            stream *= growth[index]
        squared.append(stream)  # the stem's output is the stream
    else:  # residual: the basic block
        squared, growth = _basic_profile(act, sigma_w2, sigma_b2, q_stem, blocks)
    profile = 0.5 * np.log10(np.maximum(squared[::-1], 1e-300))
    profile.flags.writeable = growth.flags.writeable = False  # cached: shared by every caller
    return profile, growth
