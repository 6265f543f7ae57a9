"""Turn gradient measurements into a diagnosis: where gradients vanish or explode, and what helps.

`diagnose(model, batch, loss_fn)` probes one forward/backward pass of any nn.Module;
`diagnose_runs(path)` reads the recorded metrics of a run or sweep directory and, when the sweep
varied a remedy key, ranks its values by what the sweep itself measured.

Thresholds (all on the back-propagated gradient ‖∂L/∂h‖ of each weight layer's output, which
unlike ‖∂L/∂W‖ cannot hide vanishing behind activations that shrink in the forward pass):
- vanishing: more than VANISH_DECADES below the output layer's; exploding: more than that above;
  non-finite: NaN or inf in a layer's activation or weight gradient.
- saturated: more than SATURATED of a saturating activation's outputs have a derivative below 5%
  of its maximum (the probe's `saturated`); dead: more than DEAD of a ReLU layer's outputs are
  exactly zero (`zero_fraction`; about half is normal for ReLU).
- through time (RNN family): the first recurrent layer's ‖∂L/∂h_0‖ (the total derivative,
  through every later step and layer) VANISH_DECADES below (or above) ‖∂L/∂h_T−1‖.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor, nn

from vgx.evidence import fmt, require_runs, tables_of
from vgx.models import ACTIVATIONS, INITS, MODELS, Residual, resolve_init
from vgx.probe import GradientProbe
from vgx.probe.activations import RAW, activation_shape
from vgx.runs import SWEEP, Sweep, load_sweep
from vgx.schema import NORM_KIND
from vgx.summary import log10_ratio
from vgx.theory import fit_slope, predicted_slope

VANISH_DECADES = 2.0
SATURATED = 0.3
DEAD = 0.9
RECURRENT_KINDS = ("rnn", "lstm", "gru")
REMEDY_KEYS = ("act", "init", "norm", "skip", "model", "recurrent_init", "forget_bias", "clip")
VANISHING, EXPLODING, NONFINITE, SATURATION, DEAD_UNITS = (
    "vanishing",
    "exploding",
    "non-finite",
    "saturated",
    "dead",
)


@dataclass(frozen=True)
class Remedy:
    """A change from the literature, as the vgx config key and value that make it."""

    key: str
    value: str
    reason: str
    citation: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}: {self.reason} ({self.citation})"


@dataclass(frozen=True)
class Architecture:
    """What a model is built from, as far as choosing remedies needs."""

    saturating: bool = False  # sigmoid, tanh, softsign units
    relu_family: bool = False
    norm: bool = False
    residual: bool = False
    recurrent: frozenset[str] = frozenset()

    @property
    def feedforward(self) -> bool:
        return not self.recurrent


# (problem, when it applies, remedy): one table for live models and recorded runs alike.
RULES: tuple[tuple[str, Callable[[Architecture], bool], Remedy], ...] = (
    (VANISHING, lambda a: a.saturating and a.feedforward, Remedy(
        "act", "relu", "its derivative is 1 wherever a unit is active, so depth does not "
        "multiply small derivatives", "Nair & Hinton 2010; Glorot, Bordes & Bengio 2011")),
    (VANISHING, lambda a: a.relu_family and a.feedforward, Remedy(
        "init", "he_normal", "Var = 2/fan_in gives ReLU nets χ₁ = 1: the gradient keeps its "
        "norm through depth", "He et al. 2015")),
    (VANISHING, lambda a: a.saturating and a.feedforward, Remedy(
        "init", "xavier_uniform", "Var = 2/(fan_in + fan_out) puts tanh-like nets at the "
        "critical σ_w² = 1", "Glorot & Bengio 2010; Schoenholz et al. 2017")),
    (VANISHING, lambda a: not a.norm and a.feedforward, Remedy(
        "norm", "batch", "re-standardises every layer's pre-activations so shrinking scales "
        "and saturation cannot compound (without skips it makes gradients grow with depth)",
        "Ioffe & Szegedy 2015; Yang et al. 2019")),
    (VANISHING, lambda a: not a.residual and a.feedforward, Remedy(
        "skip", "preact", "the identity path carries the gradient past every block (in the "
        "basic block, skip=residual, the act after the addition sits on it: sigmoid keeps "
        "0.05 per block in squared norm)", "He et al. 2016, ECCV")),
    (VANISHING, lambda a: "rnn" in a.recurrent, Remedy(
        "model", "lstm", "a gated cell's additive state path lets gradients cross many time "
        "steps (or model=gru)", "Hochreiter & Schmidhuber 1997; Cho et al. 2014")),
    (VANISHING, lambda a: "rnn" in a.recurrent, Remedy(
        "recurrent_init", "orthogonal", "an orthogonal recurrent matrix preserves the norm "
        "at every time step", "Saxe et al. 2014; Le et al. 2015")),
    (VANISHING, lambda a: "lstm" in a.recurrent, Remedy(
        "forget_bias", "1.0", "opens the forget gate at init (σ(1) ≈ 0.73 instead of 0.5), so "
        "the cell carries the gradient further back", "Gers et al. 2000; Jozefowicz et al. 2015")),
    (EXPLODING, lambda a: True, Remedy(
        "clip", "1.0", "rescales the global gradient norm before each step, so one explosion "
        "cannot wreck the weights", "Pascanu et al. 2013")),
    (EXPLODING, lambda a: a.residual and not a.norm, Remedy(
        "norm", "batch", "stops the residual stream doubling its variance every block "
        "(or scale the residual branch down: Fixup, SkipInit)",
        "De & Smith 2020; Zhang et al. 2019")),
    (EXPLODING, lambda a: a.norm and not a.residual and a.feedforward, Remedy(
        "skip", "residual", "skips remove batch norm's gradient growth with depth",
        "Yang et al. 2019; He et al. 2016")),
    (EXPLODING, lambda a: a.relu_family and a.feedforward and not a.norm, Remedy(
        "init", "he_normal", "the critical weight variance (χ₁ = 1) stops per-layer growth",
        "He et al. 2015; Schoenholz et al. 2017")),
    (EXPLODING, lambda a: a.saturating and a.feedforward and not a.norm, Remedy(
        "init", "xavier_uniform", "the critical weight variance (χ₁ = 1) stops per-layer growth",
        "Glorot & Bengio 2010; Schoenholz et al. 2017")),
    (NONFINITE, lambda a: True, Remedy(
        "clip", "1.0", "NaN/inf gradients usually follow an explosion that clipping bounds "
        "(then lower lr)", "Pascanu et al. 2013")),
    (SATURATION, lambda a: a.saturating, Remedy(
        "act", "relu", "ReLU does not saturate for positive inputs",
        "Glorot & Bengio 2010; Nair & Hinton 2010")),
    (SATURATION, lambda a: not a.norm and a.feedforward, Remedy(
        "norm", "batch", "keeps pre-activations near unit scale, in the units' linear range",
        "Ioffe & Szegedy 2015")),
    (DEAD_UNITS, lambda a: a.relu_family, Remedy(
        "act", "leaky_relu", "a small negative slope keeps a gradient for inactive units",
        "Maas et al. 2013; He et al. 2015")),
)  # fmt: skip


def remedies_for(
    problems: Iterable[str], arch: Architecture, config: Mapping[str, Any] | None = None
) -> list[Remedy]:
    """Remedies that fit the problems found in this architecture, once each, table order;
    with the run's config, those it already applies are left out."""
    found, config = set(problems), dict(config or {})
    config["init"] = _init_name(config)
    chosen: dict[tuple[str, str], Remedy] = {}
    for problem, applies, remedy in RULES:
        if problem in found and applies(arch) and not _applied(remedy, config.get(remedy.key)):
            chosen.setdefault((remedy.key, remedy.value), remedy)
    return list(chosen.values())


def _init_name(config: Mapping[str, Any]) -> Any:
    """`init=auto` as the registered init it resolves to (he_normal for relu), so that a remedy
    the run already applies is not suggested."""
    init, act, model = config.get("init"), config.get("act"), config.get("model", "mlp")
    if init not in INITS or not isinstance(init, str) or not INITS[init].auto:
        return init
    if act not in ACTIVATIONS or not isinstance(act, str):
        return init
    chosen = resolve_init(init, act, model if model in MODELS else "mlp")
    return next((name for name, entry in INITS.items() if entry is chosen), init)


def _applied(remedy: Remedy, current: Any) -> bool:
    """Whether a config value already is the remedy (any non-zero clip or forget bias counts)."""
    if current is None or (isinstance(current, float) and math.isnan(current)):
        return False
    if isinstance(current, int | float) and not isinstance(current, bool):
        return current != 0
    return str(current) == remedy.value


def architecture_of(model: nn.Module, kinds: Iterable[str]) -> Architecture:
    """The building blocks of a live model: activation modules, and the probe's layer kinds."""
    shapes = [shape for m in model.modules() if (shape := activation_shape(m)) is not None]
    return Architecture(
        saturating=any(s.saturation is not None for s in shapes),
        relu_family=any(s.dead for s in shapes),
        norm=NORM_KIND in set(kinds),
        residual=any(isinstance(m, Residual) for m in model.modules()),
        recurrent=frozenset(kinds) & frozenset(RECURRENT_KINDS),
    )


def architecture_of_config(config: dict[str, Any]) -> Architecture:
    """The building blocks a run config asks for (keys act, norm, skip, model); a run whose
    config could not be read (act missing or unknown) counts as plain layers."""
    factory = ACTIVATIONS.get(str(config.get("act", "relu")))
    shape = (activation_shape(factory()) if factory else None) or RAW
    model = config.get("model", "mlp")
    return Architecture(
        saturating=shape.saturation is not None,
        relu_family=shape.dead,
        norm=config.get("norm", "none") != "none",
        residual=config.get("skip", "none") != "none",
        recurrent=frozenset({model} & set(RECURRENT_KINDS)),
    )


@dataclass
class Diagnosis:
    """Findings of one set of gradient measurements, with the remedies that fit them."""

    layers: pd.DataFrame  # weight layers in forward order: name, kind, norms, decades, finding
    slope: float  # fitted decades per layer of ‖∂L/∂h‖, output → input (negative: vanishing)
    weight_slope: float  # the same for ‖∂L/∂W‖
    span: float  # log10 ‖∂L/∂h‖ of the first weight layer over the output layer's
    weight_span: float  # the same for ‖∂L/∂W‖
    time_span: float | None  # first recurrent layer: log10 ‖∂L/∂h_0‖ / ‖∂L/∂h_T−1‖
    problems: list[str]
    remedies: list[Remedy]
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def headline(self) -> str:
        """One line: the verdict and the numbers behind it."""
        shape = f"{fmt(self.span)} decades first/output layer, {fmt(self.slope)} per layer"
        if self.time_span is not None:
            shape += f", {fmt(self.time_span)} decades through time"
        if self.healthy:
            return f"healthy ({shape})"
        where = [
            f"{n} of {len(self.layers)} layers {p}"
            for p in self.problems
            if (n := int(self.layers["finding"].str.contains(p, regex=False).sum()))
        ]
        return f"{' + '.join(p.upper() for p in self.problems)} ({'; '.join([shape, *where])})"

    def __str__(self) -> str:
        lines = [f"Diagnosis: {self.headline()}", *(f"  note: {n}" for n in self.notes)]
        lines.append(_layer_lines(self.layers))
        if self.remedies:
            lines.append("Remedies from the literature:")
            lines += [f"  - {remedy}" for remedy in self.remedies]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers, lists and one record per layer."""
        fields = {k: v for k, v in vars(self).items() if k not in ("layers", "remedies")}
        return {
            **fields,
            "healthy": self.healthy,
            "remedies": [asdict(r) for r in self.remedies],
            "layers": self.layers.to_dict("records"),
        }


def _layer_lines(layers: pd.DataFrame, keep: int = 4) -> str:
    """The per-layer table; long models show their first and last `keep` layers."""
    shown = layers if len(layers) <= 2 * keep + 1 else pd.concat([layers[:keep], layers[-keep:]])
    columns = ["layer", "name", "kind", "act_grad_norm", "decades", "grad_norm", "saturated"]
    text = shown[[*columns, "zero_fraction", "finding"]].to_string(
        index=False, float_format=lambda v: f"{v:.3g}", na_rep="-"
    )
    if len(shown) < len(layers):
        text += f"\n  ... {len(layers) - len(shown)} layers not shown"
    return "\n".join(f"  {line}" for line in text.splitlines())


def findings(
    layers: pd.DataFrame,
    arch: Architecture,
    time_norms: np.ndarray | None = None,
    config: Mapping[str, Any] | None = None,
) -> Diagnosis:
    """Diagnose one step's per-layer metrics (columns layer, name, kind, act_grad_norm,
    grad_norm, saturated, zero_fraction) and, for recurrent models, ‖∂L/∂h_t‖ over time steps;
    `config` (a run's) keeps remedies it already applies out."""
    table = layers[layers["kind"] != NORM_KIND].sort_values("layer").reset_index(drop=True)
    if not len(table):
        empty = table.assign(decades=[], finding=[])
        return Diagnosis(
            empty, math.nan, math.nan, math.nan, math.nan, None, [], [], ["no layer metrics"]
        )
    act, weight = (table[c].to_numpy(np.float64) for c in ("act_grad_norm", "grad_norm"))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_act, log_weight = np.log10(act), np.log10(weight)
        decades = log_act - log_act[-1]
        span, weight_span = float(decades[0]), float(log_weight[0] - log_weight[-1])
    masks = {  # a layer can show several: dead units (cause) and vanishing (effect)
        NONFINITE: np.isinf(act) | np.isinf(weight) | np.isnan(act),
        VANISHING: decades < -VANISH_DECADES,
        EXPLODING: decades > VANISH_DECADES,
        SATURATION: table["saturated"].to_numpy(np.float64) > SATURATED,
        DEAD_UNITS: table["zero_fraction"].to_numpy(np.float64) > DEAD,
    }
    finding = [", ".join(p for p, mask in masks.items() if mask[i]) for i in range(len(table))]
    problems = [problem for problem, mask in masks.items() if mask.any()]
    time_span, notes = _time_span(time_norms)
    if time_span is not None and abs(time_span) > VANISH_DECADES:
        problem = VANISHING if time_span < 0 else EXPLODING
        problems = list(dict.fromkeys([*problems, problem]))
    if masks[VANISHING].any() and abs(weight_span) < VANISH_DECADES:
        notes.append(
            f"‖∂L/∂W‖ looks flat ({fmt(weight_span)} decades first/output layer) and hides the "
            "vanishing: a weight gradient is the back-propagated gradient times the layer's "
            "input, which shrinks in the forward pass (Glorot & Bengio 2010, §4.2)"
        )
    return Diagnosis(
        layers=table.assign(decades=decades, finding=finding),
        slope=fit_slope(log_act),
        weight_slope=fit_slope(log_weight),
        span=span,
        weight_span=weight_span,
        time_span=time_span,
        problems=problems,
        remedies=remedies_for(problems, arch, config),
        notes=notes,
    )


def _time_span(norms: np.ndarray | None) -> tuple[float | None, list[str]]:
    """log10 ‖∂L/∂h_0‖ / ‖∂L/∂h_T−1‖ of the first recurrent layer; None when not measured.

    ‖∂L/∂h_t‖ is the total derivative: h_0 reaches a loss on the last step through the
    recurrence, so a tiny value is vanishing, and an exact 0 vanishing past float range (−inf).
    """
    if norms is None or len(norms) < 2:
        return None, []
    if np.isnan(norms[[0, -1]]).any():
        return None, [
            "‖∂L/∂h_t‖ was not recorded (a run written before schema version 2, or a fused layer "
            "with num_layers > 1): no verdict through time"
        ]
    # decades gained from the last step back to h_0: minus those lost (an exact 0 at h_0: −inf)
    return -log10_ratio(float(norms[-1]), float(norms[0])), []


def diagnose(model: nn.Module, batch: Any, loss_fn: Callable[..., Tensor]) -> Diagnosis:
    """Probe one forward/backward pass of any model and diagnose its gradients.

    `batch` is `(inputs, targets...)`, scored as `loss_fn(model(inputs), *targets)`, or the inputs
    alone, scored as `loss_fn(model(inputs))`. Parameters' `.grad` are restored afterwards.
    """
    inputs, targets = (batch[0], batch[1:]) if isinstance(batch, tuple | list) else (batch, ())
    saved = [(p, p.grad) for p in model.parameters()]
    try:
        with GradientProbe(model, updates=False) as probe:
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), *targets)
            loss.backward()
            probe.capture(0, loss)
            probe.commit()
            frames, table = probe.frames(), probe.layer_table()
    finally:
        for param, grad in saved:
            param.grad = grad
    time = frames["time"]
    first = time[time["layer"] == time["layer"].min()].sort_values("t") if len(time) else None
    return findings(
        table.merge(frames["layers"], on="layer"),
        architecture_of(model, table["kind"]),
        None if first is None else first["hidden_grad_norm"].to_numpy(np.float64),
    )


@dataclass
class RunDiagnosis:
    """One recorded run, diagnosed at its first and its last probed step."""

    run: str
    label: str  # the run's varying config keys, or its path
    status: str
    accuracy: float
    predicted_slope: float | None  # vgx.theory, plain MLPs only
    init: Diagnosis
    end: Diagnosis

    def __str__(self) -> str:
        theory = "" if self.predicted_slope is None else f", theory {fmt(self.predicted_slope)}"
        notes = dict.fromkeys(
            [f"(init) {n}" for n in self.init.notes] + [f"(end) {n}" for n in self.end.notes]
        )
        return "\n".join(
            [
                f"{self.label} [{self.status}, test accuracy {self.accuracy:.2f}{theory}]",
                f"    at init: {self.init.headline()}",
                f"    at end:  {self.end.headline()}",
                *(f"    note: {note}" for note in notes),
            ]
        )


@dataclass
class Ranking:
    """A remedy key the sweep varied, its values best first by the sweep's own outcomes."""

    key: str
    values: pd.DataFrame  # value, accuracy, ratio, time (|decades| at init, see below), runs

    def __str__(self) -> str:
        parts = []
        for row in self.values.itertuples():
            time = "" if math.isnan(row.time) else f", |time| {row.time:.1f}"
            parts.append(
                f"{row.value} (accuracy {row.accuracy:.2f}, |ratio| {row.ratio:.1f}{time}, "
                f"{row.runs} runs)"
            )
        return f"{self.key}: " + " > ".join(parts)


@dataclass
class SweepDiagnosis:
    """Every run of a run or sweep directory, and the remedy keys ranked by its outcomes."""

    path: Path
    runs: list[RunDiagnosis]
    rankings: list[Ranking]
    left_out: list[str] = field(default_factory=list)  # runs not diagnosed, with the reason

    def __str__(self) -> str:
        lines = [f"{len(self.runs)} runs in {self.path}"]
        lines += [str(run) for run in self.runs]
        lines += [f"not diagnosed: {why}" for why in self.left_out]
        remedies: dict[tuple[str, str], Remedy] = {}
        for run in self.runs:
            for remedy in [*run.init.remedies, *run.end.remedies]:
                remedies.setdefault((remedy.key, remedy.value), remedy)
        if remedies:
            lines.append("Remedies from the literature for what was found:")
            lines += [f"  - {remedy}" for remedy in remedies.values()]
        if self.rankings:
            lines.append(
                "Ranked by this sweep (means over its other keys; |ratio|: decades between the "
                "first and the output layer's ‖∂L/∂h‖ at init; |time|: between the first and "
                "the last time step's):"
            )
            lines += [f"  {ranking}" for ranking in self.rankings]
        return "\n".join(lines)


def diagnose_runs(path: Path) -> SweepDiagnosis:
    """Diagnose every run below `path` (a run or a sweep directory) from its recorded metrics."""
    sweep = load_sweep(path)
    require_runs(tables_of(sweep), path)  # one clear error when no run can be diagnosed
    return diagnose_sweep(sweep, Path(path))


def diagnose_sweep(sweep: Sweep, path: Path) -> SweepDiagnosis:
    """Diagnose every run of a loaded sweep (vgx.runs) from its frames; a run whose config.yaml
    could not be read is not diagnosed but listed in `left_out`."""
    tables = tables_of(sweep)
    summary, layers, times = tables.summary, tables.layers, tables.times
    keys = list(tables.config_keys)
    varying = [k for k in keys if _varies(summary[k])]
    runs = []
    for row in summary.to_dict("records"):
        config = {k: row[k] for k in keys}
        stages = {
            stage: findings(
                _stage(_of_run(layers, row), stage),
                architecture_of_config(config),
                _time_norms(_of_run(times, row), stage),
                config,
            )
            for stage in ("init", "final")
        }
        label = ", ".join(f"{k}={_value_label(row[k])}" for k in varying)
        runs.append(
            RunDiagnosis(
                run=row["run"],
                label=label or (row["run"] if row["run"] != "." else Path(path).name),
                status=row["status"],
                accuracy=float(row.get("test_accuracy_final", math.nan)),
                predicted_slope=predicted_slope(config),
                init=stages["init"],
                end=stages["final"],
            )
        )
    spans = {run.run: run.init.time_span for run in runs}
    rankings = [_rank(summary, key, spans) for key in REMEDY_KEYS if key in varying]
    return SweepDiagnosis(Path(path), runs, rankings, tables.left_out)


def main_text(path: Path) -> str:
    """What `vgx diagnose PATH` prints."""
    return str(diagnose_runs(path))


def _of_run(frame: pd.DataFrame, row: Mapping[str, Any]) -> pd.DataFrame:
    """The rows of a per-run frame that belong to the summary row's run (and sweep)."""
    mask = frame["run"] == row["run"] if len(frame) else np.zeros(0, dtype=bool)
    if SWEEP in frame.columns and len(frame):
        mask &= frame[SWEEP] == row[SWEEP]
    return frame[mask]


def _varies(column: pd.Series) -> bool:
    return column.nunique(dropna=False) > 1


def _value_label(value: Any) -> str:
    """A config value as a ranking label; null (e.g. forget_bias) is PyTorch's default."""
    return "default" if pd.isna(value) else str(value)


def _stage(layers: pd.DataFrame, stage: str) -> pd.DataFrame:
    """A run's report layer rows as one step's metrics (`grad_norm_init` -> `grad_norm`)."""
    metrics = ("act_grad_norm", "grad_norm", "saturated", "zero_fraction")
    renamed = layers.rename(columns={f"{m}_{stage}": m for m in metrics})
    return renamed[["layer", "name", "kind", *metrics]]


def _time_norms(times: pd.DataFrame, stage: str) -> np.ndarray | None:
    series = times[times["stage"] == stage].sort_values("t") if len(times) else times
    return series["hidden_grad_norm"].to_numpy(np.float64) if len(series) else None


def _rank(summary: pd.DataFrame, key: str, time_spans: dict[str, float | None]) -> Ranking:
    """Values of `key`, best first: higher mean test accuracy, then a smaller |ratio| at init."""
    frame = summary.assign(
        value=summary[key].map(_value_label),
        ratio=summary["decades_lost_act_init"].astype(float).abs(),
        time=[
            abs(span) if (span := time_spans[run]) is not None else math.nan
            for run in summary["run"]
        ],
        accuracy=summary["test_accuracy_final"].astype(float),
    )
    grouped = frame.groupby("value").agg(
        accuracy=("accuracy", "mean"),
        ratio=("ratio", "mean"),
        time=("time", "mean"),
        runs=("run", "count"),
    )
    ordered = grouped.sort_values(
        ["accuracy", "ratio"], ascending=[False, True], na_position="last"
    )
    return Ranking(key, ordered.reset_index())
