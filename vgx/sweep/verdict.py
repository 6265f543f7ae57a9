"""The verdict table printed at the end of every sweep: which runs trained and which vanished.

Fed from the report's frames (summary: one row per run; layers: one row per run × layer), so the
end of a sweep reads each run once. Gradients are the back-propagated ‖∂L/∂h‖ of each weight
layer's output at the first probed step (at init), where the mean-field theory predicts them.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import SupportsFloat

import numpy as np
import pandas as pd

from vgx.diagnosis import VANISH_DECADES
from vgx.runs import SWEEP
from vgx.schema import NORM_KIND
from vgx.status import DONE
from vgx.summary import TRAINED_MEANING
from vgx.theory import fit_slope

TRAINED, NOT_TRAINED, UNKNOWN = "yes", "no", "?"
LEGEND_WIDTH = 100
VERDICT_LEGEND = (
    f"trained: {TRAINED_MEANING} (in brackets: the step at which the training loss halved); "
    "decades lost: log10 of the last over the first layer's ‖∂L/∂h‖ at init → at the end "
    "(3: the input layer gets 1000× less; negative: it grew); "
    f"where: layers more than {VANISH_DECADES:g} decades below (vanish) or above (explode) "
    "the output layer at init; slope: decades per layer "
    "toward the input at init, measured / mean-field theory (plain MLPs)"
)


def verdict_table(summary: pd.DataFrame, layers: pd.DataFrame, varying: Sequence[str]) -> str:
    """One line per run: trained or not, decades lost first→last layer, where, slopes."""
    ids = [c for c in (SWEEP, "run") if c in summary.columns]
    rows = []
    for _, run in summary.iterrows():
        mine = layers
        for column in ids:
            mine = mine[mine[column] == run[column]]
        profile = _weight_layers(mine)
        rows.append(
            {
                "run": _label(run, varying),
                "trained": _trained(run),
                "test acc": _number(run.get("test_accuracy_final"), ".2f"),
                "decades lost init → end": _decades(run),
                "where (init)": _where(profile),
                "slope measured / theory": _slopes(profile, run.get("predicted_slope")),
            }
        )
    legend = textwrap.fill(VERDICT_LEGEND, LEGEND_WIDTH)
    return f"verdict:\n{_columns(rows)}\n{legend}"


def _columns(rows: list[dict[str, str]]) -> str:
    """Left-aligned text columns (pandas right-aligns text, which hides the run names' keys)."""
    header = list(rows[0]) if rows else []
    cells = [header, *([row[c] for c in header] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def _label(run: pd.Series, varying: Sequence[str]) -> str:
    keys = [k for k in varying if k != SWEEP]
    head = [str(run[SWEEP])] if SWEEP in varying else []
    name = str(run["run"]) if run["run"] != "." else "(this run)"
    return ",".join(head + [f"{k}={run[k]}" for k in keys]) or name


def _trained(run: pd.Series) -> str:
    """summary.csv's `trained` (one definition for the table, the report and the verdict)."""
    if run["status"] != DONE:
        return str(run["status"])
    learned = run.get("trained")
    if learned is None or pd.isna(learned):
        return UNKNOWN
    if not learned:
        return NOT_TRAINED
    step = run.get("steps_to_half_loss", math.nan)
    return f"{TRAINED} ({int(step)})" if pd.notna(step) else TRAINED


def _number(value: SupportsFloat | None, spec: str) -> str:
    return "-" if value is None or pd.isna(value) else format(float(value), spec)


def _decades(run: pd.Series) -> str:
    init, end = (_float(run.get(f"decades_lost_act_{stage}")) for stage in ("init", "end"))
    return f"{_number(init, '+.1f')} → {_number(end, '+.1f')}"


def _float(value: SupportsFloat | None) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def _weight_layers(layers: pd.DataFrame) -> pd.DataFrame:
    """The run's weight layers in forward order with log10 ‖∂L/∂h‖ at init."""
    if "act_grad_norm_init" not in layers.columns or not len(layers):
        return pd.DataFrame({"layer": [], "log10": []})
    kept = layers[layers["kind"] != NORM_KIND].sort_values("layer")
    norms = kept["act_grad_norm_init"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame({"layer": kept["layer"].to_numpy(), "log10": np.log10(norms)})


def _where(profile: pd.DataFrame) -> str:
    """The layers (forward index) far below or above the output layer's gradient."""
    values = profile["log10"].to_numpy(np.float64)
    if values.size < 2 or not np.isfinite(values[-1]):
        return "-"
    decades = values - values[-1]
    found = []
    masks = {"vanish": decades < -VANISH_DECADES, "explode": decades > VANISH_DECADES}
    for word, mask in masks.items():
        indices = np.flatnonzero(mask)
        if indices.size:
            span = f"{indices[0]}" if indices.size == 1 else f"{indices[0]}-{indices[-1]}"
            found.append(f"{indices.size}/{values.size} layers ({span}) {word}")
    return "; ".join(found) or "none"


def _slopes(profile: pd.DataFrame, predicted: SupportsFloat | None) -> str:
    measured = fit_slope(profile["log10"].to_numpy(np.float64))
    return f"{_number(measured, '+.2f')} / {_number(predicted, '+.2f')}"
