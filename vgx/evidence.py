"""A loaded sweep as the analyses read it (the canned experiments' checks and the diagnosis):
its frames looked up by config values, and numbers formatted as evidence."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vgx.errors import VgxError
from vgx.runs import SWEEP, Sweep
from vgx.schema import NORM_KIND
from vgx.theory import fit_slope, theory_summary


class MissingRun(VgxError):
    """The sweep lacks a run a check needs (a partial or hand-edited sweep)."""


class SweepTables:
    """The report's tables of one sweep, looked up by config values (matching runs averaged)."""

    def __init__(
        self,
        summary: pd.DataFrame,
        layers: pd.DataFrame,
        times: pd.DataFrame | None = None,
        config_keys: tuple[str, ...] = (),
    ) -> None:
        self.summary, self.layers = summary, layers
        self.left_out: list[str] = []  # runs not in the tables, each with the reason
        self.times = times if times is not None else pd.DataFrame(columns=["run", "stage", "t"])
        self.config_keys = config_keys  # the summary's flattened config columns, when known

    def rows(self, **config: Any) -> pd.DataFrame:
        """Summary rows whose config has these values (None matches a null value)."""
        match = pd.Series(True, index=self.summary.index)
        for key, value in config.items():
            if key not in self.summary:
                raise MissingRun(f"the sweep has no `{key}` column")
            column = self.summary[key]
            match &= column.isna() if value is None else column == value
        found = self.summary[match]
        if not len(found):
            wanted = ", ".join(f"{k}={v}" for k, v in config.items())
            raise MissingRun(f"no run with {wanted}")
        return found

    def value(self, metric: str, **config: Any) -> float:
        """A summary metric, averaged over the matching runs."""
        return float(self.rows(**config)[metric].astype(float).mean())

    def per_layer(self, metric: str, stage: str, **config: Any) -> np.ndarray:
        """`{metric}_{stage}` of the weight layers (norm layers left out) in forward order."""
        runs = self.rows(**config)["run"]
        frame = self.layers[self.layers["run"].isin(runs) & (self.layers["kind"] != NORM_KIND)]
        values = frame.groupby("layer")[f"{metric}_{stage}"].mean().sort_index()
        return values.to_numpy(dtype=np.float64)

    def slope(self, stage: str = "init", interior: bool = False, **config: Any) -> float:
        """Fitted decades per layer (output → input) of ‖∂L/∂h‖; interior: without the first
        and the output layer, whose scale differs from the repeated blocks'."""
        values = np.log10(self.per_layer("act_grad_norm", stage, **config))
        return fit_slope(values[1:-1] if interior else values)

    def time_ratio(
        self, stage: str = "init", column: str = "hidden_grad_norm", **config: Any
    ) -> float:
        """log10(‖∂L/∂h_0‖ / ‖∂L/∂h_T−1‖) of the first recurrent layer (−inf: underflowed);
        column="cell_grad_norm": the same for ‖∂L/∂c_t‖ (LSTM)."""
        runs = self.rows(**config)["run"]
        frame = self.times[self.times["run"].isin(runs) & (self.times["stage"] == stage)]
        if not len(frame):
            raise MissingRun(f"no time series at {stage} for {config}")
        norms = frame.groupby("t")[column].mean().sort_index().to_numpy(np.float64)
        with np.errstate(divide="ignore"):
            return float(np.log10(norms[0]) - np.log10(norms[-1]))

    def theory(self, **config: Any) -> dict[str, float]:
        """vgx.theory's predictions for the (first) matching run's config."""
        return theory_summary(self.rows(**config).iloc[0].to_dict())


def fmt(value: float, digits: int = 2, signed: bool = True) -> str:
    """A number for evidence text: fixed decimals, signed for log ratios and slopes."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def arrow(values: Iterable[float], digits: int = 2, signed: bool = True) -> str:
    """Values in sweep order, `a → b → c`."""
    return " → ".join(fmt(v, digits, signed) for v in values)


def tables_of(sweep: Sweep) -> SweepTables:
    """A loaded sweep's frames as a check reads them. A run whose config.yaml could not be read
    has nothing to judge it by: it is left out of the tables and listed in `left_out`."""
    judged = [why is None for why in sweep.no_config]
    summary = sweep.summary[judged].reset_index(drop=True)
    tables = SweepTables(
        summary,
        _of_runs(sweep.layers, summary),
        _of_runs(sweep.times, summary),
        tuple(sweep.config_keys),
    )
    tables.left_out = [
        f"{run}: {why}"
        for run, why in zip(sweep.summary["run"], sweep.no_config, strict=True)
        if why is not None
    ]
    return tables


def require_runs(tables: SweepTables, where: Path | str) -> SweepTables:
    """`tables`, or one clear error when every run was left out."""
    if not len(tables.summary):
        why = (
            f" with a readable config.yaml ({'; '.join(tables.left_out)})"
            if tables.left_out
            else ""
        )
        raise VgxError(f"no run directories (status.json){why} below {where}")
    return tables


def _of_runs(frame: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of a per-run frame whose run (and sweep) is in `summary`."""
    ids = [c for c in (SWEEP, "run") if c in summary.columns and c in frame.columns]
    wanted = set(summary[ids].itertuples(index=False, name=None))
    keep = [key in wanted for key in frame[ids].itertuples(index=False, name=None)]
    return frame[keep].reset_index(drop=True) if len(frame) else frame
