"""The run directory: its layout, atomic small files, and chunked Parquet metrics.

Every file here is either complete or absent after a crash (`kill -9` included): small files are
written to a temporary name and renamed; metrics go to one Parquet file per chunk, also renamed.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vgx.columns import Columns
from vgx.errors import EnvironmentProblem, VgxError
from vgx.schema import SCHEMA_VERSION, upgrade, version_of
from vgx.status import CORRUPT, RUN_STATES

EVENT_FILES = "events.out.tfevents.*"  # TensorBoard's event files (vgx/tensorboard.py)
UMASK = os.umask(0o022)  # read once at import (the only way to read it); restored on the next line
os.umask(UMASK)
MIN_FREE_BYTES = 64 << 10  # a tiny run's small files alone take ~20 KiB: below this, do not start


def writable_dir(path: Path, what: str) -> None:
    """Fail in one line, before anything starts, when `path` cannot be a writable directory."""
    found = Path(path)
    while not found.exists() and found.parent != found:  # the first existing ancestor decides
        found = found.parent
    if not found.is_dir():
        raise EnvironmentProblem(f"{what}={path}: {found} is a file, not a directory")
    if not os.access(found, os.W_OK | os.X_OK):
        raise EnvironmentProblem(f"{what}={path}: {found} is not writable")
    space = os.statvfs(found)
    free = space.f_bavail * space.f_frsize
    if free < MIN_FREE_BYTES:
        raise EnvironmentProblem(f"{what}={path}: disk full ({free // 1024} KiB free in {found})")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` so that readers see the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; run files are as open as `open` makes
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def overwrite_in_place(path: Path, text: str) -> None:
    """Rewrite an existing small file's bytes where they are, when no new file can be made.

    The last resort on a full disk (a run must still say `failed` and why): the text is padded
    with spaces to the old length, so no block is freed and none is needed while it fits.
    Not atomic: used only after the atomic write failed.
    """
    with open(path, "r+b") as handle:
        old_size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        handle.write(text.encode("utf-8").ljust(old_size))
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """JSON with NaN/Inf kept (Python's json writes them as NaN/Infinity and reads them back)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; a torn or foreign file becomes a VgxError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VgxError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise VgxError(f"cannot read {path}: expected a JSON object")
    return data


class RunFile:
    """A file (or folder) of every run, by name: `RunDir(p).config` is `p / "config.yaml"`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, run: RunDir, owner: type | None = None) -> Path:
        return run.path / self.name


@dataclass(frozen=True)
class RunDir:
    """Names of the files of one run; a run directory is any directory holding `status.json`."""

    path: Path

    config = RunFile("config.yaml")
    status_file = RunFile("status.json")
    summary_file = RunFile("summary.json")
    layers_file = RunFile("layers.csv")
    env_file = RunFile("env.json")
    error_file = RunFile("error.txt")
    metrics_dir = RunFile("metrics")
    tensorboard_dir = RunFile("tensorboard")

    def exists(self) -> bool:
        return self.status_file.exists()

    def read_status(self) -> dict[str, Any]:
        """The status record; an unreadable file reads as status `corrupt` with the reason."""
        try:
            record = read_json(self.status_file)
        except VgxError as err:
            return {"status": CORRUPT, "message": str(err)}
        if record.get("status") not in RUN_STATES:
            return {"status": CORRUPT, "message": f"unknown status {record.get('status')!r}"}
        return record

    def write_status(self, status: str, **fields: Any) -> None:
        if status not in RUN_STATES:
            raise ValueError(f"unknown status {status!r}")
        record = {"status": status, "updated": time.time(), "schema_version": SCHEMA_VERSION}
        job = slurm_job()
        if job is not None:  # `vgx status` lists the SLURM jobs of a sweep from these
            record["slurm_job"] = job
        text = json.dumps({**record, **fields}, indent=2, sort_keys=True, default=str) + "\n"
        try:
            atomic_write_text(self.status_file, text)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT) or not self.status_file.exists():
                raise
            overwrite_in_place(self.status_file, text)

    def read_summary(self) -> dict[str, Any]:
        return read_json(self.summary_file)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        atomic_write_json(self.summary_file, summary)

    def read_table(self, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A metrics table as the current schema version holds it, whatever wrote the run."""
        frame = read_metrics(self.metrics_dir, table, columns)
        return upgrade(table, frame, version_of(self.read_status()))

    def clear_results(self) -> None:
        """Remove what an earlier attempt left, before the run is redone from step 0.

        Only the run's lock holder calls this (vgx/run/lock.py): the earlier writer is dead, so
        its chunks and half-written temporary files are this owner's to remove.
        """
        for chunk in [*self.metrics_dir.glob("*.parquet"), *self.metrics_dir.glob(".*.tmp")]:
            chunk.unlink(missing_ok=True)
        for events in self.tensorboard_dir.glob(EVENT_FILES):  # else TensorBoard shows both tries
            events.unlink()
        for stale in (self.summary_file, self.error_file, self.layers_file):
            stale.unlink(missing_ok=True)


def slurm_job() -> str | None:
    """The SLURM job this process runs in (`JOB_TASK` for an array task), else None."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def find_runs(root: Path) -> list[RunDir]:
    """Every run directory below `root`, whatever launched it, in a stable order."""
    return [RunDir(p.parent) for p in sorted(Path(root).rglob("status.json"))]


def chunk_files(metrics_dir: Path, table: str) -> list[Path]:
    """The complete chunks of a table, in write order (temporary files are never listed)."""
    return sorted(Path(metrics_dir).glob(f"{table}-*.parquet"))


def read_metrics(
    metrics_dir: Path, table: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """All chunks of one metrics table as one frame (empty when the run recorded none)."""
    files = chunk_files(metrics_dir, table)
    if not files:
        return pd.DataFrame(columns=list(columns) if columns else None)
    try:
        tables = [pq.read_table(f, columns=list(columns) if columns else None) for f in files]
    except (OSError, pa.ArrowException) as err:
        raise VgxError(f"cannot read metrics in {metrics_dir}: {err}") from None
    return pa.concat_tables(tables, promote_options="default").to_pandas()


class MetricsWriter:
    """Buffers columns per table and writes each chunk as its own Parquet file.

    Memory stays flat for any number of steps: a table is flushed once it holds `chunk_rows` rows
    or `flush_seconds` have passed, so a crash loses at most the chunk being filled.
    """

    def __init__(
        self, metrics_dir: Path, chunk_rows: int = 20_000, flush_seconds: float = 30.0
    ) -> None:
        self.metrics_dir = Path(metrics_dir)
        self.chunk_rows = chunk_rows
        self.flush_seconds = flush_seconds
        self._chunks_open: dict[str, Columns] = {}
        self._chunks: dict[str, int] = {}
        self._last_flush = time.monotonic()

    def append(self, table: str, columns: Mapping[str, np.ndarray | Sequence[Any]]) -> None:
        """Add rows: every column holds the same number of values."""
        arrays = {name: np.atleast_1d(np.asarray(values)) for name, values in columns.items()}
        # grown by doubling: a large chunk_rows reserves nothing up front
        chunk = self._chunks_open.get(table) or Columns(table, arrays, min(1024, self.chunk_rows))
        chunk.add(arrays)  # raises before the chunk is kept: a bad first append leaves nothing
        self._chunks_open[table] = chunk
        if chunk.rows >= self.chunk_rows:
            self._flush_table(table)
        elif time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        for table in list(self._chunks_open):
            self._flush_table(table)
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()

    def _flush_table(self, table: str) -> None:
        chunk = self._chunks_open.pop(table, None)
        if chunk is None or chunk.rows == 0:
            return
        index = self._next_chunk(table)
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        final = self.metrics_dir / f"{table}-{index:05d}.parquet"
        fd, tmp = tempfile.mkstemp(dir=self.metrics_dir, prefix=f".{final.name}.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(pa.table(chunk.arrays()), tmp)
            os.replace(tmp, final)
            # Arrow's allocator keeps the writer's freed pages (17 MB after a 20,000-row chunk of
            # a 4-layer MLP, measured as RSS); handing them back keeps a long run flat.
            pa.default_memory_pool().release_unused()
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _next_chunk(self, table: str) -> int:
        if table not in self._chunks:
            existing = chunk_files(self.metrics_dir, table)
            self._chunks[table] = int(existing[-1].stem.rsplit("-", 1)[1]) + 1 if existing else 0
        index = self._chunks[table]
        self._chunks[table] += 1
        return index

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
