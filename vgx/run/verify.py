"""A cheap check that a `done` run's files hold what `done` promises, so a resume can repair it.

Reads only small files, Parquet footers and the `step` column of the `steps` table: a run of
80,000 steps verifies in milliseconds, and a torn chunk, a duplicated chunk, a garbage config or
summary is found without reading the metrics themselves.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from vgx.errors import VgxError
from vgx.status import DONE
from vgx.store import RunDir, chunk_files


def verify_run(run: RunDir) -> list[str]:
    """What is wrong with a `done` run's files (empty when it verifies)."""
    record = run.read_status()
    if record["status"] != DONE:
        return [f"status is {record['status']}, not {DONE}"]
    problems: list[str] = []
    try:
        run.read_summary()
    except VgxError as err:
        problems.append(str(err))
    config = _read_config(run.config, problems)
    rows = {table: _footer_rows(run.metrics_dir, table, problems) for table in _tables(run)}
    if problems:
        return problems
    steps_done = record.get("step")
    every = config.get("probe", {}).get("every", 1) if isinstance(config.get("probe"), dict) else 1
    if not isinstance(steps_done, int) or not isinstance(every, int) or every < 1:
        return [f"status.json has no step count ({steps_done!r})"]
    expected = math.ceil(steps_done / every)
    problems += _check_steps(run, expected, every)
    layers = _layer_count(run, problems)
    if layers is not None and rows.get("layers", 0) != expected * layers:
        problems.append(
            f"layers metrics hold {rows.get('layers', 0)} rows, expected {expected} steps × "
            f"{layers} layers"
        )
    return problems


def _tables(run: RunDir) -> set[str]:
    """Every table with chunks in the run (hist and time included), plus the two always written."""
    names = {p.stem.rsplit("-", 1)[0] for p in Path(run.metrics_dir).glob("*.parquet")}
    return names | {"steps", "layers"}


def _read_config(path: Path, problems: list[str]) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        problems.append(f"unreadable config.yaml: {str(err).splitlines()[0]}")
        return {}
    if not isinstance(data, dict):
        problems.append("unreadable config.yaml: not a mapping")
        return {}
    return data


def _footer_rows(metrics_dir: Path, table: str, problems: list[str]) -> int:
    """Rows of a table from its chunks' footers; an unreadable footer is one of `problems`."""
    total = 0
    for chunk in chunk_files(metrics_dir, table):
        try:
            total += pq.read_metadata(chunk).num_rows
        except (OSError, pa.ArrowException) as err:
            problems.append(f"unreadable chunk {chunk.name}: {str(err).splitlines()[0]}")
    return total


def _check_steps(run: RunDir, expected: int, every: int) -> list[str]:
    """The `steps` table holds each probed step exactly once (the `step` column alone is read)."""
    try:
        steps = run.read_table("steps", ["step"])["step"].to_numpy(dtype=np.int64)
    except (VgxError, KeyError) as err:
        return [f"unreadable steps metrics: {err}"]
    unique = np.unique(steps)
    if unique.size != steps.size:
        return [f"steps metrics repeat {steps.size - unique.size} steps"]
    if not np.array_equal(unique, np.arange(expected, dtype=np.int64) * every):
        return [f"steps metrics hold {unique.size} probed steps, expected {expected}"]
    return []


def _layer_count(run: RunDir, problems: list[str]) -> int | None:
    try:
        lines = run.layers_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"unreadable layers.csv: {err}")
        return None
    return max(len(lines) - 1, 0)
