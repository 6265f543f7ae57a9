"""The one run reader: run directories as pandas frames, for the report, compare, diagnose, the
experiment verdicts and notebooks (`vgx.load_sweep`).

`load_sweep(DIR)` gives every run below DIR as a `Sweep`: `summary` (a row per run: summary.csv),
`layers` (a row per run × layer: layers.csv), `steps` (a row per run × probed step: training
loss), `evals` (a row per run × evaluation: test loss and accuracy) and `times` (RNN family: the
hidden-state, cell-state and direct output gradient per time step). Runs are read one at a time
(memory flat in runs) and through vgx/schema.py, so runs written by older versions read under
today's column names.

Nothing here writes: a run directory is only ever read. An unreadable file becomes one of the
run's `errors` (its status reads `corrupt`), never an exception, so one bad run cannot stop a
report; something merely missing becomes a `note`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
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
from vgx.schema import FIRST_VERSION, NORM_KIND, SCHEMA_VERSION, stored_columns, upgrade, version_of
from vgx.status import CORRUPT, DIVERGED
from vgx.store import RunDir, chunk_files, find_runs
from vgx.summary import SUMMARY_KEYS, gradient_summary, trained
from vgx.theory import THEORY_KEYS, fit_slope, theory_summary

LAYER_METRICS = (
    "grad_norm",
    "act_grad_norm",
    "update_ratio",
    "saturated",
    "zero_fraction",
    "dead_units",
)
LAYER_STAGES = ("init", "mean", "final")
# the `time` table's values (docs/run-directory.md); NaN where a layer's kind has none
TIME_METRICS = ("hidden_grad_norm", "cell_grad_norm", "output_grad_norm")
TREND_POINTS = 10  # training losses whose median is the start of training
MAX_POINTS = 400  # steps kept per curve or heatmap: more than a panel has pixels for
# Written by the run itself (summary.json): what only it knows.
SUMMARY_JSON_KEYS = ("steps_done", "wall_time_s", "steps_per_s", "n_train", "n_test", "n_classes")
SWEEP = "sweep"  # the column naming the sweep directory in `compare`
# summary.csv: after the ids and the keys that vary, the results a reader looks at first.
HEADLINE_COLUMNS = (
    "trained",
    "test_accuracy_final",
    "train_loss_final",
    "decades_lost_act_init",
    "decades_lost_act_end",
    "decades_lost_grad_init",
    "decades_lost_grad_end",
    "measured_slope",
    "predicted_slope",
)
LOSS_COLUMNS = (
    "train_loss_first",
    "train_loss_final",
    "train_loss_best",
    "test_loss_final",
    "test_loss_best",
    "test_accuracy_final",
    "test_accuracy_best",
)
METRIC_COLUMNS = tuple(
    dict.fromkeys(
        (
            *HEADLINE_COLUMNS,
            *LOSS_COLUMNS,
            *SUMMARY_KEYS,
            *THEORY_KEYS,
            *SUMMARY_JSON_KEYS,
        )
    )
)
TAIL_COLUMNS = ("diverged_step", "diverged_layer", "message")


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
    steps: pd.DataFrame  # step, loss (training, subsampled)
    evals: pd.DataFrame  # step, loss, accuracy (held-out evaluations)
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
    record = run.read_status()
    # An unreadable status.json hides the version: try today's names first, then older ones.
    versions = (
        [version_of(record)]
        if record["status"] != CORRUPT
        else list(range(SCHEMA_VERSION, FIRST_VERSION - 1, -1))
    )
    errors: list[str] = []
    tables = {
        "layers": _read(run, "layers", ["step", "layer", *LAYER_METRICS], versions, errors),
        "steps": _read(run, "steps", ["step", "loss"], versions, errors),
        "evals": _read(run, "evals", ["step", "loss", "accuracy"], versions, errors),
        "time": _read_time(run, versions[-1], errors),
    }
    _check_footers(run, "hist", errors)  # histograms are read for figures only: check them here
    layer_table = _read_layer_table(run, errors)
    layers, steps, evals = tables["layers"], tables["steps"], tables["evals"]
    notes = [] if any(len(t) for t in tables.values()) else ["no metrics recorded"]
    aggregates = _layer_aggregates(layers, layer_table)
    row = {
        **gradient_summary(layers, layer_table, steps, tables["time"]),
        "measured_slope": _measured_slope(aggregates),
        "train_loss_first": _first(steps, "loss"),
        "train_loss_final": _last(steps, "loss"),
        "train_loss_best": _reduce(steps, "loss", np.nanmin),
        "test_loss_final": _last(evals, "loss"),
        "test_loss_best": _reduce(evals, "loss", np.nanmin),
        "test_accuracy_final": _last(evals, "accuracy"),
        "test_accuracy_best": _reduce(evals, "accuracy", np.nanmax),
    }
    return RunMetrics(
        row=row,
        layers=aggregates,
        steps=_subsample(steps[["step", "loss"]].sort_values("step")),
        evals=evals[["step", "loss", "accuracy"]].sort_values("step").reset_index(drop=True),
        time=_time_profile(tables["time"]),
        heatmap=_heatmap(layers) if heatmap and len(layers) else None,
        errors=errors,
        notes=notes,
    )


def _read(
    run: RunDir, table: str, columns: list[str], versions: list[int], errors: list[str]
) -> pd.DataFrame:
    """A metrics table under today's column names, written by the first of `versions` whose
    names it has."""
    for version in versions:
        try:
            frame = run.read_table(table, stored_columns(table, columns, version))
            return upgrade(table, frame, version)[columns]
        except VgxError as err:
            failure = err
    errors.append(f"unreadable {table} metrics: {_one_line(failure)}")
    return pd.DataFrame(columns=columns)


def _read_time(run: RunDir, version: int, errors: list[str]) -> pd.DataFrame:
    """The `time` table under today's column names: read whole, as its value columns depend on
    the layer kind; one a run lacks is NaN. upgrade() renames only names not already taken, so
    the oldest candidate `version` also reads a newer run right."""
    columns = ["step", "layer", "t", *TIME_METRICS]
    try:
        frame = run.read_table("time")
    except VgxError as err:
        errors.append(f"unreadable time metrics: {_one_line(err)}")
        return pd.DataFrame(columns=columns)
    return upgrade("time", frame, version).reindex(columns=columns)


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


def _measured_slope(aggregates: pd.DataFrame) -> float:
    """Fitted decades per layer of ‖∂L/∂h‖ at the first step (vgx.theory's convention), over the
    weight layers: what `predicted_slope` predicts."""
    if "kind" not in aggregates or not len(aggregates):
        return math.nan
    weights = aggregates[aggregates["kind"] != NORM_KIND].sort_values("layer")
    with np.errstate(divide="ignore"):
        return fit_slope(np.log10(weights["act_grad_norm_init"].to_numpy(np.float64)))


def _first(frame: pd.DataFrame, column: str) -> float:
    """The median of the first few values: one batch's loss is noisy."""
    values = frame.sort_values("step")[column].to_numpy(np.float64)[:TREND_POINTS]
    return float(np.nanmedian(values)) if np.any(~np.isnan(values)) else math.nan


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


# -- a sweep as frames ----------------------------------------------------------------------------


@dataclass
class Sweep:
    """Every run below one or more directories, as the frames every consumer reads."""

    summary: pd.DataFrame  # a row per run (summary.csv): ids, status, config, results
    layers: pd.DataFrame  # a row per run × layer: ids, varying keys, name, kind, {metric}_{stage}
    steps: pd.DataFrame  # a row per run × probed step (≤ MAX_POINTS per run): training loss
    evals: pd.DataFrame  # a row per run × evaluation: step, test loss, test accuracy
    times: pd.DataFrame  # RNN family: stage, t, *TIME_METRICS of the first recurrent layer
    varying: list[str]  # config keys (and `sweep`) whose value differs between runs
    config_keys: list[str]  # every flattened config column of `summary`
    heatmaps: list[Heatmap | None] = field(default_factory=list)  # per summary row, when asked
    notes: list[list[str]] = field(default_factory=list)  # per summary row: what was missing
    # per summary row: why its config.yaml could not be read (None: it was); such a run is
    # listed (as corrupt) but says nothing about what varies, and checks cannot judge it
    no_config: list[str | None] = field(default_factory=list)


def load_sweep(path: str | Path) -> Sweep:
    """The frames of every run below `path` (a sweep or a single run directory)."""
    return read_runs(find_sweep_runs([(None, Path(path))]))


def find_sweep_runs(
    sources: Sequence[tuple[str | None, Path]], exclude: Path | None = None
) -> list[tuple[str | None, RunMeta]]:
    """The small files of every run below the sources, in the order of their varying keys."""
    return _sorted_metas(_read_metas(sources, exclude))


def read_runs(
    metas: list[tuple[str | None, RunMeta]],
    map_: Callable[..., Iterable[Any]] = map,
    heatmaps: Callable[[int], list[int]] | None = None,
) -> Sweep:
    """The frames of runs found by find_sweep_runs (metrics read through `map_`)."""
    varying = _varying(metas)
    picked = set(heatmaps(len(metas)) if heatmaps else ())
    flags = [i in picked for i in range(len(metas))]
    metrics = list(map_(read_run_metrics, [m.path for _, m in metas], flags))
    summary = summary_frame(
        [summary_row(m, r, sweep) for (sweep, m), r in zip(metas, metrics, strict=True)], varying
    )
    frames = {
        name: per_run_frame(summary, [getattr(r, name) for r in metrics], varying)
        for name in ("layers", "steps", "evals", "time")
    }
    return Sweep(
        summary=summary,
        layers=frames["layers"],
        steps=frames["steps"],
        evals=frames["evals"],
        times=frames["time"],
        varying=varying,
        config_keys=config_keys(summary),
        heatmaps=[r.heatmap for r in metrics],
        notes=[r.notes for r in metrics],
        no_config=[None if m.config else "; ".join(m.errors + m.notes) for _, m in metas],
    )


def _read_metas(
    sources: Sequence[tuple[str | None, Path]], exclude: Path | None
) -> list[tuple[str | None, RunMeta]]:
    """The runs of every source directory (never those under `exclude`)."""
    metas = []
    for sweep, root in sources:
        root = Path(root)
        if not root.is_dir():
            raise VgxError(f"{'not a directory' if root.exists() else 'no such directory'}: {root}")
        runs = find_runs(root)
        if exclude is not None:
            out = exclude.resolve()
            runs = [r for r in runs if not r.path.resolve().is_relative_to(out)]
            for run in runs:  # a single run's own report (RUN_DIR/report) is where it belongs
                inside = out.is_relative_to(run.path.resolve())
                if inside and run.path.resolve() != root.resolve():
                    raise VgxError(
                        f"the report directory {exclude} is inside the run directory {run.path}"
                    )
        if not runs:
            raise VgxError(f"no run directories (status.json) below {root}")
        metas += [(sweep, read_meta(run, root)) for run in runs]
    return metas


def _sorted_metas(metas: list[tuple[str | None, RunMeta]]) -> list[tuple[str | None, RunMeta]]:
    """Runs in the order of their varying config keys."""
    skeleton = _skeleton(metas)
    order = sort_runs(skeleton.assign(_order=range(len(metas))), _varying(metas))["_order"]
    return [metas[i] for i in order]


def _varying(metas: list[tuple[str | None, RunMeta]]) -> list[str]:
    """The varying keys among runs whose config.yaml was read: an unreadable one says nothing
    about what varies (else one torn file would make every key "varying")."""
    return varying_keys(_skeleton(metas)[[bool(m.config) for _, m in metas]])


def _skeleton(metas: list[tuple[str | None, RunMeta]]) -> pd.DataFrame:
    """Ids and config of each run: enough to tell which keys vary."""
    return pd.DataFrame(
        [{**({SWEEP: sweep} if sweep else {}), "run": m.run, **m.config} for sweep, m in metas]
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
    row["trained"] = trained(
        row["test_accuracy_final"], row["n_classes"], row["train_loss_first"],
        row["train_loss_final"],
    )  # fmt: skip
    row.update(
        diverged_step=meta.record.get("step", math.nan) if diverged else math.nan,
        diverged_layer=meta.record.get("layer", math.nan) if diverged else math.nan,
        message=message,
    )
    return row


def summary_frame(rows: Sequence[dict[str, Any]], varying: Sequence[str] = ()) -> pd.DataFrame:
    """summary.csv: ids, the keys that vary, the headline results, the other config keys (in
    first-seen order), the other results."""
    frame = pd.DataFrame(list(rows))
    head = [c for c in (SWEEP, "run", "status") if c in frame.columns]
    keys = [k for k in varying if k not in head]
    rest = [k for k in config_keys(frame) if k not in keys]
    results = [c for c in METRIC_COLUMNS if c not in HEADLINE_COLUMNS]
    order = [*head, *keys, *HEADLINE_COLUMNS, *rest, *results, *TAIL_COLUMNS]
    return frame.reindex(columns=order)


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


def sort_key(column: pd.Series) -> pd.Series:
    """Numbers sort as numbers; anything else (text, mixed) as text."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().sum() == column.notna().sum():
        return numeric
    return column.where(column.isna(), column.astype(str))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
