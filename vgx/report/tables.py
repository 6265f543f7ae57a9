"""The report's tables beyond the run reader's frames: the terminal view, and the mean and
spread over seeds per configuration when a sweep varied a seed."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from vgx.runs import HEADLINE_COLUMNS
from vgx.summary import TRAINED_MEANING

# What the terminal shows (short names so a row fits a terminal line) and what they mean.
TERMINAL_COLUMNS = {
    "trained": "trained",
    "train_loss_final": "loss",
    "test_accuracy_final": "acc",
    "decades_lost_grad_init": "dW_lost0",
    "decades_lost_grad_end": "dW_lost",
    "decades_lost_act_init": "dh_lost0",
    "decades_lost_act_end": "dh_lost",
    "decades_lost_time_init": "dt_lost0",
    "decades_lost_time_end": "dt_lost",
    "min_grad_norm_end": "min_dW",
    "steps_to_half_loss": "t_half",
}
RECURRENT_ONLY = ("decades_lost_time_init", "decades_lost_time_end")  # else left out
TERMINAL_LEGEND = (
    f"trained: {TRAINED_MEANING}; "
    "loss: last training loss; acc: last test accuracy; dW_lost*/dh_lost*: decades the "
    "weight gradient ‖∂L/∂W‖ / the back-propagated gradient ‖∂L/∂h‖ lose from the output to the "
    "input layer, at the first step (…0) and the last (3: the input layer's is 1000× weaker; "
    "negative: it grew); dt_lost*: decades ‖∂L/∂h_t‖ of the first recurrent layer loses from "
    "the last time step to the first (recurrent nets only); min_dW: smallest ‖∂L/∂W‖ at the "
    "last step; t_half: steps to half the first loss"
)
SEED_SUFFIX = "seed"  # a varying key ending in it (seed, data.seed) is a replicate, not a setting
SPREAD_COLUMNS = tuple(c for c in HEADLINE_COLUMNS if c != "trained")


def seed_keys(varying: Sequence[str]) -> list[str]:
    """The varying keys that only repeat a configuration (`seed`, `data.seed`)."""
    return [k for k in varying if k.rsplit(".", 1)[-1] == SEED_SUFFIX]


def by_configuration(summary: pd.DataFrame, varying: Sequence[str]) -> pd.DataFrame:
    """A row per configuration (the varying keys but seeds): runs, runs that trained, and each
    headline result's mean and standard deviation over the seeds (summary_by_config.csv)."""
    seeds = seed_keys(varying)
    keys = [k for k in varying if k not in seeds]
    frame = summary.assign(_trained=summary["trained"].eq(True))
    grouped = frame.groupby(keys, sort=False, dropna=False) if keys else frame.groupby(lambda _: 0)
    table = grouped.agg(
        runs=("run", "count"),
        trained=("_trained", "sum"),
        **{
            f"{c}_{stat}": (c, stat)
            for c in SPREAD_COLUMNS
            if c in frame
            for stat in ("mean", "std")
        },
    )
    return table.reset_index(drop=not keys)


def terminal_table(summary: pd.DataFrame, varying: Sequence[str]) -> str:
    """The summary as text that fits a terminal: varying keys, status and key metrics."""
    keys = list(varying) or ["run"]
    columns = [c for c in TERMINAL_COLUMNS if c not in RECURRENT_ONLY or summary[c].notna().any()]
    shown = summary[[*keys, "status", *columns]].rename(columns=TERMINAL_COLUMNS)
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3g}", max_rows=40, min_rows=20)
