"""Read run directories into small per-run aggregates, one run at a time (memory flat in runs).

Nothing here writes: a run directory is only ever read. An unreadable file becomes one of the
run's `errors` (the report shows it as `corrupt`), never an exception, so one bad run cannot stop a
report; something merely missing becomes a `note`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from vgx.config import flatten
from vgx.errors import VgxError
from vgx.schema import upgrade, version_of
from vgx.status import CORRUPT
from vgx.store import RunDir, chunk_files
from vgx.summary import gradient_summary

LAYER_METRICS = ("grad_norm", "act_grad_norm", "update_ratio", "saturated", "dead")
LAYER_STAGES = ("init", "mean", "final")
# the `time` table's values (docs/run-directory.md); NaN where a layer's kind has none
TIME_METRICS = ("hidden_grad_norm", "cell_grad_norm", "output_grad_norm")
MAX_POINTS = 400  # steps kept per curve or heatmap: more than a panel has pixels for
SUMMARY_JSON_KEYS = ("steps_done", "wall_time_s", "steps_per_s")  # only the run itself knows


@dataclass
class RunMeta:
    """The small files of one run: what it was asked to do and how it ended."""

    run: str  # path relative to the sweep directory
    path: Path
    record: dict[str, Any]  # status.json; status `corrupt` with the reason when unreadable
    config: dict[str, Any] = field(default_factory=dict)  # flattened
    summary: dict[str, Any] = field(default_factory=dict)  # summary.json, empty when absent
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Heatmap:
    """grad_norm of one run as a layer × step matrix (steps subsampled to MAX_POINTS)."""

    steps: np.ndarray
    layers: np.ndarray
    values: np.ndarray  # shape (len(layers), len(steps)), float64, NaN where not recorded


@dataclass
class RunMetrics:
    """One run's metrics reduced to what tables and plots need."""

    row: dict[str, float]  # gradient summary and loss/accuracy numbers
    layers: pd.DataFrame  # one row per layer: layer, name, kind, {metric}_{stage}
    loss: pd.DataFrame  # step, loss (training, subsampled)
    accuracy: pd.DataFrame  # step, accuracy (held-out evaluations)
    time: pd.DataFrame  # stage, t, *TIME_METRICS (first recurrent layer; RNN family only)
    heatmap: Heatmap | None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_meta(run: RunDir, root: Path) -> RunMeta:
    """Status, config and summary of a run, with what could not be read."""
    meta = RunMeta(
        run=run.path.relative_to(root).as_posix() or ".", path=run.path, record=run.read_status()
    )
    if meta.record["status"] == CORRUPT:
        meta.errors.append(meta.record.get("message", "unreadable status.json"))
    try:
        meta.config = {k: _scalar(v) for k, v in flatten(_read_yaml(run.config)).items()}
    except FileNotFoundError:
        meta.notes.append("no config.yaml")
    except (OSError, ValueError, yaml.YAMLError) as err:
        meta.errors.append(f"unreadable config.yaml: {_one_line(err)}")
    if run.summary_file.exists():
        try:
            meta.summary = run.read_summary()
        except VgxError as err:
            meta.errors.append(_one_line(err))
    return meta


def read_run_metrics(path: Path, heatmap: bool = False) -> RunMetrics:
    """Reduce a run's Parquet tables to summary numbers, per-layer aggregates and short curves."""
    run = RunDir(path)
    errors: list[str] = []
    tables = {
        "layers": _read(run, "layers", ["step", "layer", *LAYER_METRICS], errors),
        "steps": _read(run, "steps", ["step", "loss"], errors),
        "evals": _read(run, "evals", ["step", "loss", "accuracy"], errors),
        "time": _read_time(run, errors),
    }
    _check_footers(run, "hist", errors)  # histograms are read for figures only: check them here
    layer_table = _read_layer_table(run, errors)
    layers, steps, evals = tables["layers"], tables["steps"], tables["evals"]
    notes = [] if any(len(t) for t in tables.values()) else ["no metrics recorded"]
    row = {
        **gradient_summary(layers, layer_table, steps, tables["time"]),
        "train_loss_final": _last(steps, "loss"),
        "train_loss_best": _reduce(steps, "loss", np.nanmin),
        "test_loss_final": _last(evals, "loss"),
        "test_loss_best": _reduce(evals, "loss", np.nanmin),
        "test_accuracy_final": _last(evals, "accuracy"),
        "test_accuracy_best": _reduce(evals, "accuracy", np.nanmax),
    }
    return RunMetrics(
        row=row,
        layers=_layer_aggregates(layers, layer_table),
        loss=_subsample(steps[["step", "loss"]].sort_values("step")),
        accuracy=evals[["step", "accuracy"]].sort_values("step").reset_index(drop=True),
        time=_time_profile(tables["time"]),
        heatmap=_heatmap(layers) if heatmap and len(layers) else None,
        errors=errors,
        notes=notes,
    )


def _read_time(run: RunDir, errors: list[str]) -> pd.DataFrame:
    """The `time` table under the current column names, whatever version wrote it."""
    columns = ["step", "layer", "t", *TIME_METRICS]
    try:
        frame = run.read_table("time")
    except VgxError as err:
        errors.append(f"unreadable time metrics: {_one_line(err)}")
        return pd.DataFrame(columns=columns)
    frame = upgrade("time", frame, version_of(run.read_status()))
    return frame.reindex(columns=columns)


def _read(run: RunDir, table: str, columns: list[str], errors: list[str]) -> pd.DataFrame:
    try:
        return run.read_table(table, columns)
    except VgxError as err:
        errors.append(f"unreadable {table} metrics: {_one_line(err)}")
        return pd.DataFrame(columns=columns)


def _check_footers(run: RunDir, table: str, errors: list[str]) -> None:
    """A torn chunk of a table the report does not read whole is still named (footers only)."""
    for chunk in chunk_files(run.metrics_dir, table):
        try:
            pq.read_metadata(chunk)
        except (OSError, pa.ArrowException) as err:
            errors.append(f"unreadable {table} metrics: {chunk.name}: {_one_line(err)}")


def _read_layer_table(run: RunDir, errors: list[str]) -> pd.DataFrame:
    """layers.csv (layer, name, kind): empty when absent, one of `errors` when unreadable."""
    empty = pd.DataFrame({"layer": pd.Series(dtype="int64"), "name": [], "kind": []})
    try:
        table = pd.read_csv(run.layers_file, usecols=list(empty.columns), dtype={"layer": "int64"})
        return table[~table["layer"].duplicated()]
    except FileNotFoundError:
        return empty
    except (OSError, ValueError, TypeError, pd.errors.ParserError) as err:
        errors.append(f"unreadable layers.csv: {_one_line(err)}")
        return empty


def _layer_aggregates(layers: pd.DataFrame, layer_table: pd.DataFrame) -> pd.DataFrame:
    """Per layer: each metric at the first probed step, averaged over steps, at the last step."""
    layer = layers["layer"].to_numpy(dtype=np.int64)
    step = layers["step"].to_numpy(dtype=np.int64)
    ids = np.flatnonzero(np.bincount(layer)) if layer.size else np.empty(0, np.int64)
    slot = np.searchsorted(ids, layer)
    ends = {"init": step == step.min(initial=0), "final": step == step.max(initial=0)}
    columns: dict[str, np.ndarray] = {}
    for metric in LAYER_METRICS:
        values = layers[metric].to_numpy(dtype=np.float64)
        recorded = ~np.isnan(values)
        total = np.bincount(slot, weights=np.where(recorded, values, 0.0), minlength=ids.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / np.bincount(slot, weights=recorded, minlength=ids.size)
        for stage in LAYER_STAGES:
            columns[f"{metric}_{stage}"] = mean if stage == "mean" else np.full(ids.size, np.nan)
        for stage, rows in ends.items():
            columns[f"{metric}_{stage}"][slot[rows]] = values[rows]
    aggregates = pd.DataFrame(columns, index=pd.Index(ids, name="layer"))
    table = layer_table.set_index("layer")
    index = table.index.union(aggregates.index)
    return pd.concat([table.reindex(index), aggregates.reindex(index)], axis=1).reset_index()


def _heatmap(layers: pd.DataFrame) -> Heatmap:
    steps, column = np.unique(layers["step"].to_numpy(), return_inverse=True)
    layer_ids, row = np.unique(layers["layer"].to_numpy(), return_inverse=True)
    values = np.full((layer_ids.size, steps.size), np.nan)
    values[row, column] = layers["grad_norm"].to_numpy(dtype=np.float64)
    keep = _stride(steps.size)
    return Heatmap(steps=steps[keep], layers=layer_ids, values=values[:, keep])


def _time_profile(time: pd.DataFrame) -> pd.DataFrame:
    """The time columns over time steps t of the first recurrent layer, first and last step."""
    columns = ["stage", "t", *TIME_METRICS]
    if not len(time):
        return pd.DataFrame(columns=columns)
    first_layer = time[time["layer"] == time["layer"].min()]
    step = first_layer["step"]
    stages = {"init": step == step.min(), "final": step == step.max()}
    return pd.concat(
        [
            first_layer.loc[rows, ["t", *TIME_METRICS]].sort_values("t").assign(stage=stage)
            for stage, rows in stages.items()
        ],
        ignore_index=True,
    )[columns].astype(dict.fromkeys(TIME_METRICS, "float64"))


def _subsample(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[_stride(len(frame))].reset_index(drop=True)


def _stride(n: int) -> np.ndarray:
    """At most MAX_POINTS evenly spaced indices of n, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(np.int64))


def _last(frame: pd.DataFrame, column: str) -> float:
    return float(frame.sort_values("step")[column].iloc[-1]) if len(frame) else math.nan


def _reduce(frame: pd.DataFrame, column: str, fn: Callable[[np.ndarray], Any]) -> float:
    values = frame[column].to_numpy(dtype=np.float64)
    return float(fn(values)) if np.any(~np.isnan(values)) else math.nan


def _read_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, dict):
        raise ValueError("expected a mapping")
    return data


def _scalar(value: Any) -> Any:
    """Config values as table cells: lists and mappings become their JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def _one_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
