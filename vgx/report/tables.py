"""The report's tables: a row per run (summary.csv), a row per run × layer (layers.csv)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from vgx.report.collect import SUMMARY_JSON_KEYS, RunMeta, RunMetrics
from vgx.status import CORRUPT, DIVERGED
from vgx.summary import SUMMARY_KEYS
from vgx.theory import THEORY_KEYS, theory_summary

LOSS_COLUMNS = (
    "train_loss_final",
    "train_loss_best",
    "test_loss_final",
    "test_loss_best",
    "test_accuracy_final",
    "test_accuracy_best",
)
METRIC_COLUMNS = (*LOSS_COLUMNS, *SUMMARY_JSON_KEYS, *SUMMARY_KEYS, *THEORY_KEYS)
TAIL_COLUMNS = ("diverged_step", "diverged_layer", "message")
SWEEP = "sweep"  # the column naming the sweep directory in `compare`

# What the terminal shows (short names so a row fits a terminal line) and what they mean.
TERMINAL_COLUMNS = {
    "train_loss_final": "loss",
    "test_accuracy_final": "acc",
    "vanishing_ratio_grad_init": "W_init",
    "vanishing_ratio_grad_end": "W_end",
    "vanishing_ratio_act_init": "act_init",
    "vanishing_ratio_act_end": "act_end",
    "min_grad_norm_end": "min_grad",
    "steps_to_half_loss": "t_half",
}
TERMINAL_LEGEND = (
    "loss: last training loss; acc: last test accuracy; W_*/act_*: log10(first/last layer "
    "‖∂L/∂W‖ / ‖∂L/∂a‖) at the first/last step (−3: input layer 1000× weaker); "
    "min_grad: smallest ‖∂L/∂W‖ at the last step; t_half: steps to half the first loss"
)


def summary_row(meta: RunMeta, metrics: RunMetrics, sweep: str | None = None) -> dict[str, Any]:
    """A run's summary.csv row: status, flattened config, metrics, and where or why it stopped."""
    errors = meta.errors + metrics.errors
    recorded = meta.record["status"]
    status = CORRUPT if errors else recorded
    message = "; ".join(
        [
            *([str(meta.record["message"])] if meta.record.get("message") else []),
            *errors,
            *([f"recorded status: {recorded}"] if errors and recorded != CORRUPT else []),
        ]
    )
    diverged = recorded == DIVERGED
    row: dict[str, Any] = {SWEEP: sweep} if sweep is not None else {}
    row.update(run=meta.run, status=status, **meta.config, **metrics.row)
    row.update(theory_summary(meta.config))
    row.update({key: _number(meta.summary.get(key)) for key in SUMMARY_JSON_KEYS})
    row.update(
        diverged_step=meta.record.get("step", math.nan) if diverged else math.nan,
        diverged_layer=meta.record.get("layer", math.nan) if diverged else math.nan,
        message=message,
    )
    return row


def summary_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """summary.csv: identity, then config keys (in first-seen order), then metrics."""
    frame = pd.DataFrame(list(rows))
    head = [c for c in (SWEEP, "run", "status") if c in frame.columns]
    return frame.reindex(columns=[*head, *config_keys(frame), *METRIC_COLUMNS, *TAIL_COLUMNS])


def config_keys(summary: pd.DataFrame) -> list[str]:
    """The flattened config columns of a summary frame."""
    fixed = {SWEEP, "run", "status", *METRIC_COLUMNS, *TAIL_COLUMNS}
    return [c for c in summary.columns if c not in fixed]


def varying_keys(summary: pd.DataFrame) -> list[str]:
    """Config keys (and `sweep`) whose value differs between runs; missing counts as a value.

    Across sweeps only the keys every sweep has count: a key one sweep lacks altogether (another
    vgx version, an extra `+key=`) stays in the tables but the `sweep` column tells them apart."""
    keys = config_keys(summary)
    if SWEEP in summary.columns:
        present = summary.groupby(SWEEP)[keys].count().gt(0).all()
        keys = [SWEEP, *(k for k in keys if present[k])]
    return [key for key in keys if summary[key].nunique(dropna=False) > 1]


def sort_runs(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Rows in the order of the varying keys (numbers numerically), then by run path."""
    by = [*keys, "run"]
    return frame.sort_values(by, key=sort_key, na_position="last", ignore_index=True)


def per_run_frame(
    summary: pd.DataFrame, per_run: Sequence[pd.DataFrame], varying: Sequence[str]
) -> pd.DataFrame:
    """Stack one frame per run (layers.csv: per layer) with the run's ids and varying keys."""
    ids = [c for c in (SWEEP, "run") if c in summary.columns]
    keys = summary[[*ids, *(k for k in varying if k not in ids)]]
    parts = [
        layers.assign(**{c: row[c] for c in ids})
        for (_, row), layers in zip(summary[ids].iterrows(), per_run, strict=True)
        if len(layers)
    ]
    if not parts:
        return pd.DataFrame(columns=list(keys.columns))
    stacked = pd.concat(parts, ignore_index=True)
    merged = keys.merge(stacked, on=ids, how="inner", sort=False)
    return merged.reset_index(drop=True)


def terminal_table(summary: pd.DataFrame, varying: Sequence[str]) -> str:
    """The summary as text that fits a terminal: varying keys, status and key metrics."""
    keys = list(varying) or ["run"]
    shown = summary[[*keys, "status", *TERMINAL_COLUMNS]].rename(columns=TERMINAL_COLUMNS)
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3g}", max_rows=40, min_rows=20)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def sort_key(column: pd.Series) -> pd.Series:
    """Numbers sort as numbers; anything else (text, mixed) as text."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().sum() == column.notna().sum():
        return numeric
    return column.where(column.isna(), column.astype(str))
