"""Worker processes for large sweeps: reading runs and rendering figures then use every core."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.text import Text

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


@dataclass(frozen=True)
class Drawn:
    """A figure's file, or why it could not be drawn from what the runs hold."""

    path: Path
    error: str | None = None


def render(path: Path, build: Callable[..., Figure], args: tuple[Any, ...]) -> Drawn:
    """Build a figure and save it as PNG (a picklable job, so it can run in a worker).

    A figure that fails on odd data (duplicated or foreign chunks, a sweep without metrics) is
    reported, not raised: the report draws every other figure. OSError (disk full) still raises.
    """
    try:
        figure = build(*args)
        plain_text(figure)
        figure.savefig(path, dpi=DPI)
    except (ValueError, KeyError, IndexError, TypeError, ArithmeticError, RuntimeError) as err:
        path.unlink(missing_ok=True)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return Drawn(path, f"{type(err).__name__}: {reason}")
    return Drawn(path)


def plain_text(figure: Figure) -> None:
    """Titles, labels and legends show `$` as typed: a run or sweep named `a$x^$` is no formula.

    Tick labels keep mathtext (log axes label their ticks 10^k with it).
    """
    ticks = {
        id(label)
        for ax in figure.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in (*axis.get_major_ticks(), *axis.get_minor_ticks())
        for label in (tick.label1, tick.label2)
    }
    for text in figure.findobj(Text):
        if id(text) not in ticks:
            text.set_parse_math(False)
