"""TensorBoard event files in RUN_DIR/tensorboard/: live while a run goes, or exported afterwards.

Tags: `loss`, `grad_total_norm`, `nonfinite` (table `steps`); `eval/loss`, `eval/accuracy`
(`evals`); `<metric>/<layer name>` for every column of `layers` (`grad_norm/blocks.3.linear`);
`hist/<quantity>/<layer name>` histograms of log10|x| over the nonzero finite values (`hist`).
NaN values (a metric group switched off) are left out; the `time` table stays in Parquet only.
TensorBoard is optional: without it, asking for these files is a ConfigError saying how to
install it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vgx.errors import ConfigError, VgxError
from vgx.histograms import N_FINITE, bin_edges
from vgx.status import CORRUPT, RUNNING
from vgx.store import EVENT_FILES, RunDir, find_runs

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30  # as MetricsWriter: a live sweep shows at most this much less than the Parquet
# table -> tag prefix of its scalar columns
SCALAR_TABLES = {"steps": "", "layers": "", "evals": "eval/"}
KEY_COLUMNS = ("step", "layer")


class TensorBoardSink:
    """A sink (see vgx.loggers) writing the probe's tables as TensorBoard scalars and histograms.

    Each step's values go out as one event (hundreds of add_scalar calls would cost more than a
    training step). Tags name layers by the probe's layer table, which the training loop hands
    over (`describe_layers`) once the first step has run: rows are held back until then (or until
    the sink closes; then layers are tagged by number).
    """

    def __init__(self, run_dir: Path) -> None:
        self._protos, SummaryWriter = _tensorboard()
        self.run_dir = Path(run_dir)
        self._writer = SummaryWriter(
            str(RunDir(self.run_dir).tensorboard_dir), flush_secs=FLUSH_SECONDS
        )
        self._names: dict[int, str] | None = None
        self._held: list[tuple[str, Mapping[str, Any]]] = []

    def describe_layers(self, table: pd.DataFrame) -> None:
        """The layer table (layer, name, ...): per-layer tags use the names from now on."""
        self._names = dict(zip(table["layer"].tolist(), table["name"].astype(str), strict=True))
        self._release()

    def append(self, table: str, columns: Mapping[str, Any]) -> None:
        self._held.append((table, columns))
        if self._names is not None:
            self._release()

    def close(self) -> None:
        self._release()
        self._writer.close()

    def _release(self) -> None:
        """Write the rows held back, now that the layer names are known (or never will be)."""
        for table, columns in self._held:
            if table == "hist":
                self._histograms(columns)
            elif table in SCALAR_TABLES:
                self._scalars(SCALAR_TABLES[table], columns)
        self._held.clear()

    def _scalars(self, prefix: str, columns: Mapping[str, Any]) -> None:
        tags = self._tags(columns)
        metrics = {n: np.atleast_1d(np.asarray(v, np.float64)) for n, v in columns.items()}
        for step, rows in _by_step(columns["step"]):
            values = [
                self._protos.Summary.Value(tag=f"{prefix}{name}{tags[i]}", simple_value=v)
                for name, column in metrics.items()
                if name not in KEY_COLUMNS
                for i, v in zip(rows, column[rows].tolist(), strict=True)
                if v == v  # not NaN
            ]
            self._write(values, step)

    def _histograms(self, columns: Mapping[str, Any]) -> None:
        """One histogram per step, layer and quantity, over log10 of the finite bins' edges,
        dense from the first to the last nonzero bin (TensorBoard reads buckets as contiguous)."""
        frame = pd.DataFrame({k: np.asarray(v) for k, v in columns.items()})
        frame = frame[(frame["bin"] >= 1) & (frame["bin"] <= N_FINITE)]
        tags = self._tags({"layer": frame["layer"].to_numpy()})
        quantities = frame["quantity"].tolist()
        frame = frame.assign(tag=[f"hist/{q}{t}" for q, t in zip(quantities, tags, strict=True)])
        for step, at_step in frame.groupby("step", sort=True):
            values = []
            for tag, group in at_step.groupby("tag", sort=False):
                bins = np.arange(group["bin"].min(), group["bin"].max() + 1)
                counts = np.zeros(len(bins))
                counts[group["bin"].to_numpy() - bins[0]] = group["count"].to_numpy()
                lower, upper = bin_edges(bins)
                centers = (lower + upper) / 2
                histogram = self._protos.HistogramProto(
                    min=lower[0],
                    max=upper[-1],
                    num=counts.sum(),
                    sum=counts @ centers,
                    sum_squares=counts @ centers**2,
                    bucket_limit=upper.tolist(),
                    bucket=counts.tolist(),
                )
                values.append(self._protos.Summary.Value(tag=tag, histo=histogram))
            self._write(values, int(step))

    def _write(self, values: list[Any], step: int) -> None:
        if values:
            self._writer.file_writer.add_summary(self._protos.Summary(value=values), step)

    def _tags(self, columns: Mapping[str, Any]) -> list[str]:
        """Per row: '/<layer name>' for per-layer rows, else ''."""
        if "layer" not in columns:
            return [""] * len(np.atleast_1d(columns["step"]))
        names = self._names or {}
        return [f"/{names.get(i, i)}" for i in np.asarray(columns["layer"]).tolist()]


def export_tensorboard(sweep_dir: Path) -> list[Path]:
    """`vgx export --tensorboard`: event files for every finished run below `sweep_dir`, from its
    Parquet tables. Earlier event files of a run (live logger, earlier export) are replaced, so
    each run has one set of events; runs still running, corrupt or unreadable are skipped."""
    written: list[Path] = []
    for run in find_runs(Path(sweep_dir)):
        if run.read_status()["status"] in (RUNNING, CORRUPT):
            continue
        try:
            tables = {t: run.read_table(t) for t in (*SCALAR_TABLES, "hist")}
        except VgxError as err:
            log.warning("skipping %s: %s", run.path, err)
            continue
        if not any(len(frame) for frame in tables.values()):
            continue
        for old in run.tensorboard_dir.glob(EVENT_FILES):
            old.unlink()
        with closing(TensorBoardSink(run.path)) as sink:
            sink.describe_layers(_layer_table(run))
            for table, frame in tables.items():
                if len(frame):
                    sink.append(table, {c: frame[c].to_numpy() for c in frame.columns})
        written += sorted(run.tensorboard_dir.glob(EVENT_FILES))
    return written


def _tensorboard() -> tuple[Any, Any]:
    """TensorBoard's protocol buffers and torch's SummaryWriter, or a ConfigError on how to get
    them (an optional dependency: vgx itself never needs it)."""
    try:
        from tensorboard.compat.proto import summary_pb2
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "logger=tensorboard needs the tensorboard package: pip install 'vgx[tensorboard]'"
        ) from None
    return summary_pb2, SummaryWriter


def _layer_table(run: RunDir) -> pd.DataFrame:
    """A finished run's layers.csv (layer, name); empty when unreadable: tags use numbers."""
    try:
        return pd.read_csv(run.layers_file, usecols=["layer", "name"])
    except (OSError, ValueError):
        return pd.DataFrame({"layer": [], "name": []})


def _by_step(steps: Any) -> Iterator[tuple[int, np.ndarray]]:
    """(step, row indices) in step order; one sort, however many steps a table holds."""
    steps = np.atleast_1d(np.asarray(steps))
    order = np.argsort(steps, kind="stable")
    bounds = np.flatnonzero(np.diff(steps[order])) + 1
    for rows in np.split(order, bounds):
        yield int(steps[rows[0]]), rows
