"""Canned experiments: the published result each configs/experiment/NAME.yaml reproduces, and a
check that says, with the measured numbers, whether a finished sweep shows it.

A check reads the report's tables: `summary` (one row per run: `run`, flattened config keys,
summary metrics), `layers` (one row per run × layer: `run`, `layer`, `kind`, `{metric}_{stage}`
for stage init/mean/final) and `times` (one row per run × stage × time step of the first recurrent
layer: `run`, `stage`, `t`, `hidden_grad_norm`, `cell_grad_norm`, `output_grad_norm`).
Thresholds are stated in each claim's text.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vgx.errors import VgxError
from vgx.evidence import MissingRun, SweepTables, arrow, fmt, tables_of
from vgx.registry import Registry
from vgx.runs import Sweep, load_sweep
from vgx.theory import fit_slope

CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over the 10 digit classes
ADDING_BASELINE = 1 / 6  # MSE of always predicting 1 on the adding problem (data.load_adding)
YANG_RELU_SLOPE = math.log10(math.pi / (math.pi - 1)) / 2  # Yang et al. 2019, Thm 3.10, ReLU


@dataclass(frozen=True)
class Verdict:
    """Whether a sweep shows its experiment's published result, with the numbers."""

    experiment: str
    citation: str
    expected: str
    shown: bool
    evidence: str

    def __str__(self) -> str:
        mark = "SHOWN" if self.shown else "NOT SHOWN"
        claims = "\n".join(f"    {claim}" for claim in self.evidence.splitlines())
        return (
            f"{self.experiment}: {mark} — {self.citation}\n"
            f"  expected: {self.expected}\n  measured:\n{claims}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Claims:
    """Sub-findings of one check: shown only when every one holds."""

    def __init__(self) -> None:
        self.items: list[tuple[bool, str]] = []

    def add(self, holds: bool, text: str) -> None:
        self.items.append((bool(holds), text))

    def result(self) -> tuple[bool, str]:
        shown = all(ok for ok, _ in self.items)
        return shown, "\n".join(f"{'✓' if ok else '✗'} {text}" for ok, text in self.items)


Check = Callable[[SweepTables], tuple[bool, str]]


@dataclass(frozen=True)
class Experiment:
    """A canned sweep: the result it reproduces and how its sweep is judged."""

    citation: str
    expected: str
    check: Check


EXPERIMENTS: Registry[Experiment] = Registry("experiment", "canned sweep of a classic result")


def experiment(name: str, citation: str) -> Callable[[Check], Check]:
    """Register a check function under `name` (one file configs/experiment/NAME.yaml each); its
    docstring is the result it expects, as `vgx list` and the report print it."""

    def add(check: Check) -> Check:
        expected = " ".join((check.__doc__ or "").split())
        EXPERIMENTS.add(name, Experiment(citation, expected, check))
        return check

    return add


@experiment("glorot2010", "Glorot & Bengio 2010, AISTATS, §4.2-4.3, Figs. 6-7")
def _glorot2010(t: SweepTables) -> tuple[bool, str]:
    """with the standard init U(±1/√fan_in) back-propagated gradients shrink toward the input;
    the normalised init keeps them nearly constant for tanh and softsign, which then train
    better; sigmoid is worst"""
    claims, inits = Claims(), ("default", "xavier_uniform")
    ratio = {
        (act, init): -t.value("decades_lost_act_init", act=act, init=init)
        for act in ("sigmoid", "tanh", "softsign")
        for init in inits
    }
    for act in ("tanh", "softsign"):
        standard, normalised = ratio[act, "default"], ratio[act, "xavier_uniform"]
        theory = [-t.theory(act=act, init=i)["predicted_decades_lost_act"] for i in inits]
        claims.add(
            standard < 0 and abs(normalised) <= abs(standard) / 2,
            f"{act}: log10(first/last ‖∂L/∂h‖) at init, standard → normalised "
            f"{arrow([standard, normalised])} (theory {arrow(theory)}; normalised at most half)",
        )
    claims.add(
        ratio["sigmoid", "default"] == min(ratio.values()),
        f"sigmoid vanishes most: {arrow([ratio['sigmoid', i] for i in inits])} decades",
    )
    accuracy = {
        act: [t.value("test_accuracy_final", act=act, init=i) for i in inits]
        for act in ("sigmoid", "tanh", "softsign")
    }
    claims.add(
        all(accuracy[a][1] >= accuracy[a][0] for a in ("tanh", "softsign"))
        and max(accuracy["sigmoid"]) < min(accuracy["tanh"] + accuracy["softsign"]),
        "test accuracy, standard → normalised: "
        + ", ".join(f"{a} {arrow(v, signed=False)}" for a, v in accuracy.items())
        + " (normalised ≥ standard for tanh, softsign; sigmoid lowest)",
    )
    return claims.result()


@experiment("glorot2010_saturation", "Glorot & Bengio 2010, AISTATS, §3.1, Fig. 2")
def _glorot2010_saturation(t: SweepTables) -> tuple[bool, str]:
    """with sigmoid units and the standard init the top hidden layer is driven into saturation
    (outputs near 0) early in training while the first hidden layer does not saturate"""
    claims = Claims()
    stages = ("init", "mean", "final")
    top = [t.per_layer("saturated", s, act="sigmoid", init="default")[-2] for s in stages]
    first = t.per_layer("saturated", "final", act="sigmoid", init="default")[0]
    claims.add(
        top[0] < 0.05 and top[1] >= 0.3 and top[2] >= 0.5,
        f"standard init: saturated fraction of the top hidden layer at init, mean over training, "
        f"final {arrow(top, signed=False)} (need < 0.05, ≥ 0.3, ≥ 0.5)",
    )
    claims.add(
        first < 0.05,
        f"first hidden layer saturated at the end: {fmt(first, signed=False)} (< 0.05)",
    )
    other = [t.per_layer("saturated", s, act="sigmoid", init="xavier_uniform")[-2] for s in stages]
    claims.add(True, f"for contrast, normalised init, top layer: {arrow(other, signed=False)}")
    return claims.result()


@experiment("he2015", "He et al. 2015, ICCV, §2.2, Fig. 3")
def _he2015(t: SweepTables) -> tuple[bool, str]:
    """a 30-layer ReLU net converges with the He init and stalls with Xavier's, whose
    back-propagated gradient halves in squared norm every layer"""
    claims = Claims()
    he, xavier = {"init": "he_normal"}, {"init": "xavier_normal"}
    for name, run, trains in (("he_normal", he, True), ("xavier_normal", xavier, False)):
        loss, accuracy = t.value("train_loss_final", **run), t.value("test_accuracy_final", **run)
        holds = (loss < 1.0 and accuracy >= 0.5) if trains else loss > CHANCE_LOSS - 0.1
        need = "loss < 1, accuracy ≥ 0.5" if trains else f"within 0.1 of ln 10 = {CHANCE_LOSS:.2f}"
        claims.add(
            holds, f"{name}: final train loss {loss:.2f}, test accuracy {accuracy:.2f} ({need})"
        )
    act = [-t.value("decades_lost_act_init", **run) for run in (he, xavier)]
    weight = [-t.value("decades_lost_grad_init", **run) for run in (he, xavier)]
    theory = [-t.theory(**run)["predicted_decades_lost_act"] for run in (he, xavier)]
    claims.add(
        abs(act[0]) <= 1 and act[1] <= -3,
        f"log10(first/last ‖∂L/∂h‖) at init, he → xavier: {arrow(act)} (theory {arrow(theory)}); "
        f"the weight-gradient ratio {arrow(weight)} hides Xavier's vanishing",
    )
    return claims.result()


@experiment(
    "normalisation", "Ioffe & Szegedy 2015; He et al. 2016; Yang et al. 2019, ICLR, Thm 3.10"
)
def _normalisation(t: SweepTables) -> tuple[bool, str]:
    """plain 20-layer nets' gradients vanish and they do not train; batch norm rescues training
    but without skips makes gradients grow toward the input (ReLU: π/(π−1) per layer in squared
    norm); pre-activation blocks keep gradients within a decade and rescue training, basic blocks
    do so for tanh and ReLU but not sigmoid (its act is on the identity path)"""
    claims, acts = Claims(), ("sigmoid", "tanh", "relu")

    def numbers(norm: str, skip: str) -> tuple[list[float], list[float]]:
        ratios = [-t.value("decades_lost_act_init", act=a, norm=norm, skip=skip) for a in acts]
        accuracy = [t.value("test_accuracy_final", act=a, norm=norm, skip=skip) for a in acts]
        return ratios, accuracy

    def listed(values: list[float], signed: bool = True) -> str:
        return ", ".join(f"{a} {fmt(v, signed=signed)}" for a, v in zip(acts, values, strict=True))

    ratios, accuracy = numbers("none", "none")
    claims.add(
        all(r < -3 for r in ratios) and all(a < 0.2 for a in accuracy),
        f"plain: log10(first/last ‖∂L/∂h‖) at init {listed(ratios)} (< −3), "
        f"test accuracy {listed(accuracy, signed=False)} (< 0.2)",
    )
    ratios, accuracy = numbers("batch", "none")
    relu_slope = t.slope(act="relu", norm="batch", skip="none")
    claims.add(
        all(r > 0 for r in ratios) and all(a > 0.8 for a in accuracy),
        f"batch norm: gradients grow toward the input {listed(ratios)} (> 0), "
        f"test accuracy {listed(accuracy, signed=False)} (> 0.8)",
    )
    claims.add(
        abs(relu_slope - YANG_RELU_SLOPE) <= 0.03,
        f"batch norm, ReLU: {fmt(relu_slope, 3)} decades per layer vs Yang et al.'s "
        f"log10(π/(π−1))/2 = {fmt(YANG_RELU_SLOPE, 3)} (±0.03)",
    )
    ratios, accuracy = numbers("none", "residual")
    claims.add(
        ratios[0] < -3
        and all(abs(r) <= 1.5 for r in ratios[1:])
        and all(a > 0.8 for a in accuracy[1:]),
        f"basic residual block: {listed(ratios)} (sigmoid < −3: its act is on the identity path; "
        f"|·| ≤ 1.5 for tanh and relu), test accuracy {listed(accuracy, signed=False)} "
        "(> 0.8 for tanh and relu)",
    )
    ratios, accuracy = numbers("none", "preact")
    claims.add(
        all(abs(r) <= 1.5 for r in ratios) and all(a > 0.8 for a in accuracy[1:]),
        f"pre-activation block: {listed(ratios)} (|·| ≤ 1.5), test accuracy "
        f"{listed(accuracy, signed=False)} (> 0.8 for tanh and relu)",
    )
    ratios, accuracy = numbers("batch", "residual")
    claims.add(
        True,
        f"batch norm + residual: {listed(ratios)}, test accuracy {listed(accuracy, signed=False)}",
    )
    return claims.result()


@experiment(
    "he2016",
    "He et al. 2016, CVPR, §4.2, Fig. 6; De & Smith 2020; Zhang et al. 2019 (Fixup)",
)
def _he2016(t: SweepTables) -> tuple[bool, str]:
    """in the CIFAR nets of 6n+2 layers, deeper plain (batch-normalised) nets train worse
    (degradation), residual ones do not; without normalisation a residual ReLU net at He init
    grows its squared gradient every block (2 on large maps; 1.3-1.6 on digits' small maps)"""
    claims = Claims()
    depths = tuple(sorted(int(d) for d in t.summary["depth"].unique()))
    layers = tuple(6 * d + 2 for d in depths)
    for skip in ("none", "residual"):
        run = {"norm": "batch", "skip": skip}
        accuracy = [t.value("test_accuracy_final", depth=d, **run) for d in depths]
        loss = [t.value("train_loss_final", depth=d, **run) for d in depths]
        if skip == "none":
            holds, need = accuracy[-1] < accuracy[0] - 0.2, "deepest ≥ 0.2 below shallowest"
        else:
            holds, need = accuracy[-1] >= accuracy[0] - 0.05, "deepest within 0.05 of shallowest"
        claims.add(
            holds,
            f"batch norm, skip={skip}, {arrow(layers, 0, signed=False)} layers: test accuracy "
            f"{arrow(accuracy, signed=False)}, final train loss {arrow(loss, signed=False)} "
            f"({need})",
        )
    # Two weight layers a block: the squared norm per block is 10^(2 · 2 · decades per layer).
    growth = {
        d: 10 ** (4 * t.slope(norm="none", skip="residual", depth=d, interior=True))
        for d in depths
        if d > 1
    }
    claims.add(
        all(1.2 <= g <= 2.5 for g in growth.values()),
        "no norm, residual, He init: squared-gradient growth per block "
        + ", ".join(f"{g:.2f} at {6 * d + 2} layers" for d, g in growth.items())
        + " (1.2 … 2.5)",
    )
    status = [t.rows(norm="none", skip="residual", depth=d)["status"].iloc[0] for d in depths]
    claims.add(
        True, f"no norm, residual, {arrow(layers, 0, signed=False)} layers: {', '.join(status)}"
    )
    return claims.result()


@experiment("init_scale", "Poole et al. 2016, NeurIPS; Schoenholz et al. 2017, ICLR")
def _init_scale(t: SweepTables) -> tuple[bool, str]:
    """tanh-net gradients vanish below the critical init σ_w² = 1 (init_std = 1/√width), are
    preserved at it and explode above it, as mean-field theory predicts; the critical net trains
    best"""
    claims = Claims()
    stds = sorted(t.summary["init_std"].astype(float).unique())
    ratios = [-t.value("decades_lost_act_init", init_std=s) for s in stds]
    theory = [-t.theory(init_std=s)["predicted_decades_lost_act"] for s in stds]
    accuracy = [t.value("test_accuracy_final", init_std=s) for s in stds]
    width = float(t.summary["width"].iloc[0])
    critical = int(np.argmin([abs(s - 1 / math.sqrt(width)) for s in stds]))
    claims.add(
        bool(np.all(np.diff(ratios) > 0)) and abs(ratios[critical]) < 1,
        f"init_std {arrow(stds, 3, signed=False)}: log10(first/last ‖∂L/∂h‖) at init "
        f"{arrow(ratios)} (increasing; |·| < 1 at the critical {stds[critical]:.3f})",
    )
    claims.add(
        all(abs(m - p) <= max(1.0, 0.15 * abs(p)) for m, p in zip(ratios, theory, strict=True)),
        f"theory {arrow(theory)} (each within max(1, 15%) decades)",
    )
    claims.add(
        accuracy[critical] == max(accuracy),
        f"test accuracy {arrow(accuracy, signed=False)} (best at the critical init)",
    )
    return claims.result()


DEPTHS = (1, 2)  # the recurrent experiments' depths; the time ratio is of layer 0 (input side)


def _init_time_ratio(
    t: SweepTables, depth: int, model: str, seq_len: int = 50, recurrent_init: str = "default"
) -> float:
    return t.time_ratio(model=model, seq_len=seq_len, recurrent_init=recurrent_init, depth=depth)


@experiment(
    "rnn_lstm_gru",
    "Bengio et al. 1994; Hochreiter & Schmidhuber 1997; Cho et al. 2014; Le et al. 2015",
)
def _rnn_lstm_gru(t: SweepTables) -> tuple[bool, str]:
    """at init the gradient through 50 time steps vanishes by many decades in a tanh RNN and, at
    PyTorch's default init (forget gate σ(0) = 0.5), in an LSTM alike (seed 0, width 32: log10
    ‖∂L/∂h_0‖/‖∂L/∂h_49‖ ≈ −10 and −11.5 at depth 1, −9.4 and −9.6 at depth 2), more for longer
    sequences; an orthogonal recurrent matrix keeps several decades more (RNN ≈ −2 and −1); after
    training the LSTM and GRU learn the adding problem, the RNN does not"""
    claims = Claims()
    for depth in DEPTHS:
        ratio = partial(_init_time_ratio, t, depth)
        rnn = [ratio("rnn", n) for n in (20, 50)]
        claims.add(
            rnn[1] <= -6 and rnn[1] < rnn[0],
            f"depth {depth}, RNN: log10(‖∂L/∂h_0‖/‖∂L/∂h_T−1‖) at init, T = 20 → 50: "
            f"{arrow(rnn)} (≤ −6 at 50)",
        )
        gated = {m: ratio(m) for m in ("lstm", "gru")}
        claims.add(
            gated["lstm"] <= -6,
            f"depth {depth}, T = 50 at init: LSTM {fmt(gated['lstm'])}, GRU {fmt(gated['gru'])} "
            f"vs RNN {fmt(rnn[1])} (the default-init LSTM ≤ −6 too)",
        )
        orthogonal = {m: ratio(m, recurrent_init="orthogonal") for m in ("rnn", "lstm")}
        claims.add(
            orthogonal["rnn"] >= rnn[1] + 4 and orthogonal["lstm"] >= gated["lstm"] + 2,
            f"depth {depth}, orthogonal recurrent init: RNN {fmt(orthogonal['rnn'])}, LSTM "
            f"{fmt(orthogonal['lstm'])} (≥ 4 and ≥ 2 decades above default)",
        )
    loss = {
        (m, d): t.value("test_loss_final", model=m, seq_len=50, recurrent_init="default", depth=d)
        for m in ("rnn", "lstm", "gru")
        for d in DEPTHS
    }
    claims.add(
        all(
            loss["rnn", d] > 0.1 and loss["lstm", d] < 0.05 and loss["gru", d] < 0.05
            for d in DEPTHS
        ),
        "T = 50, test MSE after training (depth 1, 2): "
        + ", ".join(f"{m} {loss[m, 1]:.3f}, {loss[m, 2]:.3f}" for m in ("rnn", "lstm", "gru"))
        + f" (predicting 1 gives {ADDING_BASELINE:.3f}; RNN > 0.1, LSTM and GRU < 0.05)",
    )
    trained = {
        m: t.time_ratio("final", model=m, seq_len=50, recurrent_init="default", depth=1)
        for m in ("rnn", "lstm", "gru")
    }
    claims.add(
        True,
        "depth 1, T = 50 after training: " + ", ".join(f"{m} {fmt(v)}" for m, v in trained.items()),
    )
    return claims.result()


@experiment("lstm_forget_gate", "Gers et al. 2000; Jozefowicz et al. 2015, ICML, §3")
def _lstm_forget_gate(t: SweepTables) -> tuple[bool, str]:
    """at PyTorch's default init an LSTM's gradient through 50 steps vanishes by many decades; a
    forget-gate bias of 1 keeps the cell open (σ(1) ≈ 0.73 per step instead of 0.5) and keeps
    several decades more (seed 0, width 32, depth 1: log10 ‖∂L/∂h_0‖/‖∂L/∂h_49‖ ≈ −11.5 → −5.1;
    with an orthogonal recurrent matrix −7.8 → −2.2; depth 2: −9.6 → −3.0, −6.2 → −1.2)"""
    claims = Claims()
    for depth in DEPTHS:
        for recurrent_init in ("default", "orthogonal"):
            ratios = [
                t.time_ratio(forget_bias=b, recurrent_init=recurrent_init, depth=depth)
                for b in (None, 1.0)
            ]
            cells = [
                t.time_ratio(
                    forget_bias=b,
                    recurrent_init=recurrent_init,
                    depth=depth,
                    column="cell_grad_norm",
                )
                for b in (None, 1.0)
            ]
            claims.add(
                ratios[1] >= ratios[0] + 3,
                f"depth {depth}, recurrent_init={recurrent_init}: log10(‖∂L/∂h_0‖/‖∂L/∂h_T−1‖) "
                f"at init, forget bias default → 1: {arrow(ratios)}; of ‖∂L/∂c_t‖: "
                f"{arrow(cells)} (≥ 3 decades better)",
            )
        default = t.time_ratio(forget_bias=None, recurrent_init="default", depth=depth)
        claims.add(
            default <= -6,
            f"depth {depth}, default init: {fmt(default)} (≤ −6: many decades lost)",
        )
    loss = {
        (b, r): t.value("test_loss_final", forget_bias=b, recurrent_init=r, depth=2)
        for b in (None, 1.0)
        for r in ("default", "orthogonal")
    }
    helped = sum(loss[1.0, r] < loss[None, r] for r in ("default", "orthogonal"))
    claims.add(
        True,
        "depth 2, test MSE after training (forget bias, recurrent init): "
        + ", ".join(f"({b or 'default'}, {r}) {v:.3f}" for (b, r), v in loss.items())
        + f"; forget bias 1 ended lower in {helped} of 2 (training speed is not the claim)",
    )
    return claims.result()


@experiment("xiong2020", "Xiong et al. 2020, ICML, Thm 1, Fig. 2-3")
def _xiong2020(t: SweepTables) -> tuple[bool, str]:
    """at init the post-LN transformer's gradient of the feed-forward output weight grows with
    the block index toward the output while pre-LN's does not; so post-LN needs learning-rate
    warm-up and pre-LN trains without it"""
    claims = Claims()
    slopes = {}
    for position in ("pre", "post"):
        runs = t.rows(norm_position=position, warmup_steps=0)["run"]
        frame = t.layers[t.layers["run"].isin(runs)]
        ffn = frame[frame["name"].str.endswith("feed_forward.contract")]
        per_block = ffn.groupby("layer")["grad_norm_init"].mean().sort_index()
        # fit_slope counts toward the input; the claim is about growth toward the output
        slopes[position] = -fit_slope(np.log10(per_block.to_numpy()))
    claims.add(
        slopes["post"] > slopes["pre"] + 0.02,
        f"slope of log10 ‖∂L/∂W₂‖ over the block index at init, decades per block: pre-LN "
        f"{fmt(slopes['pre'], 3)}, post-LN {fmt(slopes['post'], 3)} (post-LN's larger by > 0.02)",
    )
    accuracy = {
        (position, warmup): t.value(
            "test_accuracy_final", norm_position=position, warmup_steps=warmup
        )
        for position in ("pre", "post")
        for warmup in sorted(set(t.summary["warmup_steps"]))
    }
    without, with_ = min(w for _, w in accuracy), max(w for _, w in accuracy)
    claims.add(
        accuracy["post", with_] >= accuracy["post", without] + 0.3,
        f"post-LN test accuracy, warm-up {without} → {with_} steps: "
        f"{arrow([accuracy['post', without], accuracy['post', with_]], signed=False)} "
        "(warm-up gains ≥ 0.3)",
    )
    claims.add(
        accuracy["pre", without] >= accuracy["pre", with_] - 0.05,
        f"pre-LN test accuracy, warm-up {without} → {with_} steps: "
        f"{arrow([accuracy['pre', without], accuracy['pre', with_]], signed=False)} "
        "(no warm-up is within 0.05)",
    )
    return claims.result()


def check_experiment(
    name: str, summary: pd.DataFrame, layers: pd.DataFrame, times: pd.DataFrame | None = None
) -> Verdict:
    """Judge a sweep of experiment `name` from the report's tables (times: RNN experiments)."""
    spec = EXPERIMENTS[name]
    try:
        shown, evidence = spec.check(SweepTables(summary, layers, times))
    except MissingRun as err:
        shown, evidence = (
            False,
            f"✗ not checked: {err} (run the whole sweep: vgx sweep +experiment={name})",
        )
    return Verdict(name, spec.citation, spec.expected, shown, evidence)


def verdict_for_sweep(sweep_dir: Path) -> Verdict | None:
    """The verdict of the experiment a sweep ran (config key `experiment`); None if it ran none."""
    return verdict_of(load_sweep(sweep_dir), str(sweep_dir))


def verdict_of(sweep: Sweep, where: str) -> Verdict | None:
    """The verdict of the experiment a loaded sweep ran; None if it ran none."""
    tables = tables_of(sweep)
    names = set(tables.summary.get("experiment", pd.Series(dtype=object)).dropna()) - {""}
    if not names:
        return None
    if len(names) > 1:
        raise VgxError(f"{where} mixes experiments {sorted(names)}; check one at a time")
    return check_experiment(names.pop(), tables.summary, tables.layers, tables.times)


def main(argv: list[str]) -> int:
    """`python -m vgx.experiments SWEEP_DIR ...`: print each sweep's verdict."""
    verdicts = [verdict_for_sweep(Path(path)) for path in argv]
    for path, verdict in zip(argv, verdicts, strict=True):
        print(verdict if verdict else f"{path}: not a canned experiment (no `experiment` key)")
        print()
    shown = sum(bool(v and v.shown) for v in verdicts)
    print(f"{shown} of {len(verdicts)} experiments show their published result")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
