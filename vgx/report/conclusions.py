"""What a sweep shows, in words: the verdict per run, the runs that did not train, the canned
experiment's verdict, and the measured against the predicted slope. index.html opens with it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vgx.diagnosis import SweepDiagnosis, diagnose_sweep
from vgx.errors import VgxError
from vgx.experiments import Verdict, verdict_of
from vgx.runs import Sweep

MAX_NAMED = 8  # runs named in one sentence; the table below lists them all


@dataclass(frozen=True)
class RunVerdict:
    """One run's conclusion: did it learn, and what its gradients did at init and at the end."""

    title: str  # the run by its varying keys
    status: str
    trained: bool | None  # None: cannot be told (no losses, no classes)
    accuracy: float
    at_init: str  # vgx.diagnosis headline: "VANISHING (−8.6 decades first/output layer, …)"
    at_end: str
    problems: tuple[str, ...]  # at init: vanishing, exploding, non-finite, saturated, dead
    measured_slope: float  # decades per layer of ‖∂L/∂h‖ at init, output → input
    predicted_slope: float  # mean-field theory (plain MLPs), NaN elsewhere


@dataclass
class Conclusions:
    runs: list[RunVerdict]
    sentences: list[str]  # the page's first lines
    experiment: Verdict | None = None
    notes: list[str] = field(default_factory=list)  # what could not be concluded, and why


def conclude(sweep: Sweep, titles: Sequence[str], where: Path) -> Conclusions:
    """The conclusions of a loaded sweep whose runs are named `titles` (summary order)."""
    diagnosis = diagnose_sweep(sweep, where)
    runs = _run_verdicts(sweep, diagnosis, titles)
    notes = [f"not diagnosed: {why}" for why in diagnosis.left_out]
    try:
        experiment = verdict_of(sweep, str(where))
    except VgxError as err:
        experiment = None
        notes.append(str(err))
    return Conclusions(runs, _sentences(runs, experiment), experiment, notes)


def _run_verdicts(
    sweep: Sweep, diagnosis: SweepDiagnosis, titles: Sequence[str]
) -> list[RunVerdict]:
    # the runs diagnose_sweep diagnosed: those whose config.yaml was read
    judged = [i for i, why in enumerate(sweep.no_config) if why is None]
    rows = sweep.summary.iloc[judged].to_dict("records")
    titles = [titles[i] for i in judged]
    return [
        RunVerdict(
            title=title,
            status=str(row["status"]),
            trained=None if _missing(row["trained"]) else bool(row["trained"]),
            accuracy=float(row["test_accuracy_final"]),
            at_init=run.init.headline(),
            at_end=run.end.headline(),
            problems=tuple(run.init.problems),
            measured_slope=float(row["measured_slope"]),
            predicted_slope=float(row["predicted_slope"]),
        )
        for row, run, title in zip(rows, diagnosis.runs, titles, strict=True)
    ]


def _sentences(runs: list[RunVerdict], experiment: Verdict | None) -> list[str]:
    """One sentence per finding, naming the runs it holds for."""
    failed = [r.title for r in runs if r.trained is False]
    learned = [r.title for r in runs if r.trained]
    sentences = []
    if failed:
        sentences.append(
            f"{len(failed)} of {len(runs)} runs did not train (test accuracy near chance or "
            f"training loss not falling): {_names(failed)}."
        )
    if learned:
        sentences.append(f"{len(learned)} of {len(runs)} runs trained: {_names(learned)}.")
    for problem, verb in (("vanishing", "vanish"), ("exploding", "explode")):
        hit = [r.title for r in runs if problem in r.problems]
        if hit:
            sentences.append(
                f"Gradients {verb} at init (more than 2 decades between the output and an "
                f"earlier layer) in {len(hit)} of {len(runs)} runs: {_names(hit)}."
            )
    healthy = [r.title for r in runs if r.at_init.startswith("healthy")]
    if healthy:
        sentences.append(
            f"Healthy gradients at init in {len(healthy)} of {len(runs)} runs: {_names(healthy)}."
        )
    compared = [r for r in runs if math.isfinite(r.predicted_slope + r.measured_slope)]
    if compared:
        worst = max(compared, key=lambda r: abs(r.measured_slope - r.predicted_slope))
        sentences.append(
            f"Measured slope vs mean-field theory (decades per layer, output → input) in "
            f"{len(compared)} runs; the largest gap: {worst.title}, {worst.measured_slope:+.2f} "
            f"measured vs {worst.predicted_slope:+.2f} predicted."
        )
    if experiment is not None:
        mark = "SHOWN" if experiment.shown else "NOT SHOWN"
        sentences.append(
            f"Experiment {experiment.experiment}: {mark} — {experiment.expected} "
            f"({experiment.citation})."
        )
    return sentences


def _names(titles: list[str]) -> str:
    shown = "; ".join(titles[:MAX_NAMED])
    return shown + (f" and {len(titles) - MAX_NAMED} more" if len(titles) > MAX_NAMED else "")


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
