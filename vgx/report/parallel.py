"""Worker processes for large sweeps: reading runs and rendering figures then use every core."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

PARALLEL_MIN_RUNS = 24  # below this, starting worker processes costs more than it saves
MAX_WORKERS = 8
DPI = 110  # a 3 × 2.2-inch panel is 330 × 240 pixels

Mapper = Callable[..., Iterable[Any]]


@contextmanager
def mapper(runs: int) -> Iterator[Mapper]:
    """A `map` that runs in worker processes when the sweep is large, else the builtin one."""
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if runs < PARALLEL_MIN_RUNS or workers < 2:
        yield map
        return
    # spawn: workers never inherit the parent's threads (pyarrow pools) and count as its children.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:

        def pooled(fn: Callable[..., Any], *items: list[Any]) -> Iterable[Any]:
            return pool.map(fn, *items, chunksize=max(1, len(items[0]) // (workers * 8)))

        yield pooled


def render(path: Path, build: Callable[..., Figure], args: tuple[Any, ...]) -> Path:
    """Build a figure and save it as PNG (a picklable job, so it can run in a worker)."""
    build(*args).savefig(path, dpi=DPI)
    return path
