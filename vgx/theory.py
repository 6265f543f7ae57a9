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
from collections.abc import Callable, Mapping
from dataclasses import fields
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from numpy.polynomial.legendre import leggauss
from omegaconf import DictConfig, OmegaConf

from vgx.config import DataConfig, flatten
from vgx.models import ACTIVATIONS

# Panels of z = 0 … 10 on each side, graded toward 0 where ReLU-like activations have kinks and
# saturating ones at large q change fastest; NODES Gauss-Legendre nodes per panel.
PANEL_EDGES = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 4.0, 10.0)  # N(0, 1) mass beyond 10: 1.5e-23
NODES = 24
Q_MIN, Q_MAX = 1e-12, 1e8  # lengths are clipped here: q* = 0 is evaluated as its limit q → 0⁺
Q_GRID = np.logspace(math.log10(Q_MIN), math.log10(Q_MAX), 401)
THEORY_KEYS = ("chi1", "q_star", "predicted_slope", "predicted_decades_lost_act")
MARGINAL = 1e-9  # |q_next/q − 1| below this: every q is a fixed point (ReLU at σ_w² = 2, σ_b² = 0)

# init -> (fan_in, fan_out, init_std) -> (σ_w², σ_b²): weight variance × fan_in, bias variance.
# vgx.models.init zeroes biases for every init but PyTorch's default.
INIT_VARIANCES: dict[str, Callable[[int, int, float], tuple[float, float]]] = {
    # PyTorch's Linear: weight and bias U(±1/√fan_in), Var = bound²/3 (Glorot's "standard" init).
    "default": lambda fi, fo, std: (1 / 3, 1 / (3 * fi)),
    # Glorot & Bengio 2010, eq. 16: Var = 2/(fan_in + fan_out); σ_w² = 1 for equal widths.
    "xavier_uniform": lambda fi, fo, std: (2 * fi / (fi + fo), 0.0),
    "xavier_normal": lambda fi, fo, std: (2 * fi / (fi + fo), 0.0),
    # He et al. 2015, eq. 10: Var = 2/fan_in.
    "he_uniform": lambda fi, fo, std: (2.0, 0.0),
    "he_normal": lambda fi, fo, std: (2.0, 0.0),
    # Approximation: an orthogonal matrix has entries of second moment 1/max(fan_in, fan_out), the
    # same as Var = 1/fan_in when square; the Gaussian length map ignores its exact spectrum
    # (Saxe et al. 2014; Pennington et al. 2017 show the spectrum matters beyond the mean).
    "orthogonal": lambda fi, fo, std: (fi / max(fi, fo), 0.0),
    "lecun_normal": lambda fi, fo, std: (1.0, 0.0),  # LeCun et al. 1998: Var = 1/fan_in
    "normal": lambda fi, fo, std: (std * std * fi, 0.0),  # N(0, init_std²)
}


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
    q = torch.from_numpy(np.clip(np.atleast_1d(np.asarray(q, dtype=np.float64)), Q_MIN, Q_MAX))
    phi, slope = activation_and_slope(act, q.sqrt()[:, None] * z[None, :])
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
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return flatten(dict(cfg))


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
) -> tuple[str, float, float, int, float] | None:
    """(act, σ_w², σ_b², depth, q0) of a plain MLP config; None where the theory does not apply."""
    flat = _flat(cfg)
    plain = (flat.get("model", "mlp"), flat.get("norm", "none"), flat.get("skip", "none"))
    if plain != ("mlp", "none", "none"):
        return None  # CNN, RNN, normalisation, residual: not this mean-field map
    act, init = flat.get("act"), flat.get("init", "default")
    if act not in ACTIVATIONS or init not in INIT_VARIANCES:
        return None
    width, std = int(flat["width"]), float(flat.get("init_std", 0.05))
    sigma_w2, sigma_b2 = INIT_VARIANCES[init](width, width, std)
    if q0 is None:
        items = _data_items(flat)
        n_in, moment = _input_moments(items) if items else (width, 1.0)
        # The first layer has fan_in = n_features: fold its own σ_w² into the input length so the
        # first hidden layer gets its true q¹ (its bias variance is taken as the hidden layers').
        q0 = moment * INIT_VARIANCES[init](n_in, width, std)[0] / sigma_w2
    return act, sigma_w2, sigma_b2, int(flat["depth"]), q0


def predicted_profile(
    cfg: Mapping[str, Any] | DictConfig, q0: float | None = None
) -> np.ndarray | None:
    """Predicted log10‖δ‖ of every Linear layer of the config's MLP, relative to the output layer,
    in forward order: the report's gradient-vs-layer x axis (layers.csv `layer`, no norm layers).

    `cfg` is a composed config or a flat summary row (keys act, init, init_std, width, depth,
    model, norm, skip, data...); q0 defaults to the dataset's mean squared input (1 without data).
    None where the theory does not apply: CNN, RNN family, normalisation, residual blocks.
    """
    inputs = _mlp_theory_inputs(cfg, q0)
    return None if inputs is None else predicted_log10_grad_profile(*inputs)


def predicted_slope(cfg: Mapping[str, Any] | DictConfig, q0: float | None = None) -> float | None:
    """Predicted decades per layer (output → input) of ‖δ‖ at init, fitted over the real depth;
    None where the theory does not apply (see predicted_profile)."""
    profile = predicted_profile(cfg, q0)
    return None if profile is None else fit_slope(profile)


def theory_summary(
    cfg: Mapping[str, Any] | DictConfig, q0: float | None = None
) -> dict[str, float]:
    """Columns for summary.csv: `chi1`, `q_star`, `predicted_slope` (decades per layer, output →
    input), `predicted_decades_lost_act` (log10 last/first layer ‖∂L/∂h‖, comparable with
    `decades_lost_act_init`) and `q_star` (the fixed point q* of the length map: the second moment
    of every layer's pre-activations deep in a wide net at init); NaN where it does not apply."""
    inputs = _mlp_theory_inputs(cfg, q0)
    return dict.fromkeys(THEORY_KEYS, math.nan) if inputs is None else dict(_summary(*inputs))


@lru_cache(maxsize=1024)  # a sweep's runs share few configs; the report asks for every run
def _summary(
    act: str, sigma_w2: float, sigma_b2: float, depth: int, start: float
) -> dict[str, float]:
    inputs = (act, sigma_w2, sigma_b2, depth, start)
    q_star = fixed_point(act, sigma_w2, sigma_b2, start * sigma_w2 + sigma_b2)
    profile = predicted_log10_grad_profile(*inputs)
    return {
        "chi1": float(chi(act, sigma_w2, q_star)[0]),
        "q_star": q_star,
        "predicted_slope": fit_slope(profile),
        "predicted_decades_lost_act": -float(profile[0]),
    }
