"""How runs map onto a figure: which varying key colours the lines, which ones facet the panels."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vgx.report.tables import sort_key

MAX_PANELS = 36  # 6 × 6: beyond this a panel is too small to read
MAX_SIDE = 6
# Figure geometry in inches (fonts at matplotlib's default sizes).
PANEL = (3.0, 2.2)  # one panel's axes
LEFT, BOTTOM = 0.9, 0.55  # y tick labels and y label; x tick labels and x label
ROW_GAP = 0.95  # between panel rows: x tick labels, x label, the next panel's title
INNER_GAP, TICKS_GAP = 0.2, 0.55  # between columns: shared y (no tick labels), own y tick labels
TOP_PAD, TITLE_LINE, PANEL_TITLE = 0.2, 0.2, 0.3
RIGHT_PAD, CHAR_WIDTH = 0.25, 0.065  # legend: width per character of the longest label
# Settings worth naming in a title when every run shares them (the rest are in config.yaml).
TITLE_KEYS = (
    "model",
    "data",
    "depth",
    "width",
    "act",
    "init",
    "norm",
    "skip",
    "optimizer",
    "lr",
    "steps",
)


@dataclass(frozen=True)
class Encoding:
    """Varying keys drawn as colour, panel column, panel row; `lines` are further keys (seeds)
    whose runs are drawn as separate lines of the same colour."""

    color: str | None = None
    col: str | None = None
    row: str | None = None
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Panel:
    """One subplot: where it sits, its title, and the key values its runs share."""

    row: int
    col: int
    title: str
    match: dict[str, Any]


@dataclass(frozen=True)
class Grid:
    nrows: int
    ncols: int
    panels: list[Panel]
    left_out: list[str]  # titles of panels that did not fit


def choose_encoding(
    summary: pd.DataFrame, varying: Sequence[str], side_by_side: str | None = None
) -> Encoding:
    """Colour by the categorical key with the fewest values; facet by the next two (the
    `side_by_side` key, if varying, always as columns); replicate keys (`*seed`) stay lines."""
    replicates = tuple(k for k in varying if k.rsplit(".", 1)[-1] == "seed")
    keys = [k for k in varying if k not in replicates]
    count = {k: summary[k].nunique(dropna=False) for k in keys}
    first = [side_by_side] if side_by_side in keys else []
    rest = sorted(
        (k for k in keys if k not in first),
        key=lambda k: (pd.api.types.is_numeric_dtype(summary[k]), count[k]),
    )
    color, others = (rest[0], rest[1:]) if rest else (None, [])
    facets = first + sorted(others, key=lambda k: count[k], reverse=True)[: 2 - len(first)]
    col, row = [*facets, None, None][:2]
    return Encoding(color, col, row, replicates + tuple(k for k in others if k not in facets))


def grid(data: pd.DataFrame, enc: Encoding) -> Grid:
    """Panels for the facet keys: rows × columns, or one key wrapped into a near-square grid."""
    cols = ordered_values(data[enc.col]) if enc.col else [None]
    rows = ordered_values(data[enc.row]) if enc.row else [None]
    if enc.row is None:
        shown = cols[:MAX_PANELS]
        ncols = len(shown) if len(shown) <= 4 else math.ceil(math.sqrt(len(shown)))
        panels = [
            Panel(i // ncols, i % ncols, *_facet(enc, None, value)) for i, value in enumerate(shown)
        ]
        left_out = [_facet(enc, None, value)[0] for value in cols[MAX_PANELS:]]
        return Grid(math.ceil(len(shown) / ncols), ncols, panels, left_out)
    shown_rows, shown_cols = rows[:MAX_SIDE], cols[:MAX_SIDE]
    panels = [
        Panel(i, j, *_facet(enc, r, c))
        for i, r in enumerate(shown_rows)
        for j, c in enumerate(shown_cols)
    ]
    left_out = [
        _facet(enc, r, c)[0]
        for r in rows
        for c in cols
        if r not in shown_rows or c not in shown_cols
    ]
    return Grid(len(shown_rows), len(shown_cols), panels, left_out)


def select(data: pd.DataFrame, match: dict[str, Any]) -> pd.DataFrame:
    """The rows of `data` whose keys equal `match` (NaN matches NaN)."""
    mask = pd.Series(True, index=data.index)
    for key, value in match.items():
        mask &= data[key].isna() if _missing(value) else data[key] == value
    return data[mask]


def ordered_values(column: pd.Series) -> list[Any]:
    """Distinct values in display order (numbers numerically, missing last)."""
    values = pd.Series(column.drop_duplicates().tolist(), dtype=column.dtype)
    return values.sort_values(key=sort_key, na_position="last").tolist()


def colors(column: pd.Series) -> dict[Any, Any]:
    """A colour per displayed value: qualitative for names, an ordered colormap for numbers."""
    values = ordered_values(column)
    if pd.api.types.is_numeric_dtype(column) and len(values) > 1:
        cmap = mpl.colormaps["viridis"]
        return {format_value(v): cmap(0.9 * i / (len(values) - 1)) for i, v in enumerate(values)}
    cycle = mpl.colormaps["tab10"].colors
    return {format_value(v): cycle[i % len(cycle)] for i, v in enumerate(values)}


def label(key: str, value: Any) -> str:
    """`key=value` as shown in legends and panel titles."""
    return f"{key}={format_value(value)}"


def format_value(value: Any) -> str:
    if _missing(value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fixed_settings(summary: pd.DataFrame, varying: Sequence[str]) -> str:
    """The settings every run shares, for titles: 'model=mlp, init=default, steps=300'."""
    shared = [
        label(k, summary[k].iloc[0])
        for k in TITLE_KEYS
        if k in summary.columns and k not in varying and summary[k].notna().all()
    ]
    return ", ".join(shared)


def wrap(text: str, width_inches: float) -> str:
    """Wrap a title to the figure width (about 11 characters per inch at title size)."""
    return "\n".join(
        textwrap.fill(line, max(30, int(width_inches * 11))) for line in text.split("\n")
    )


def figure_grid(
    nrows: int, ncols: int, title: str, side: float = 0.0, shared_y: bool = True
) -> tuple[Figure, np.ndarray]:
    """nrows × ncols panels of fixed size with margins in inches and `side` inches on the right
    (legend, colour bar). Fixed margins instead of constrained layout: a 36-panel figure renders
    several times faster, and nothing overlaps because every text has its reserved space."""
    right = RIGHT_PAD + side
    wspace = INNER_GAP if shared_y else TICKS_GAP
    width = LEFT + ncols * PANEL[0] + (ncols - 1) * wspace + right
    body = BOTTOM + nrows * PANEL[1] + (nrows - 1) * ROW_GAP
    text = wrap(title, width)
    top = TOP_PAD + TITLE_LINE * (text.count("\n") + 1) + PANEL_TITLE
    height = body + top
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=LEFT / width,
        right=1 - right / width,
        bottom=BOTTOM / height,
        top=1 - top / height,
        wspace=wspace / PANEL[0],
        hspace=ROW_GAP / PANEL[1],
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    if shared_y:  # the caller gives every panel the same y range: one column of y tick labels
        for ax in axes[:, 1:].flat:
            ax.tick_params(which="both", labelleft=False)
    fig.suptitle(text, y=1 - TOP_PAD / 2 / height, va="top", fontsize=10)
    return fig, axes


def legend_width(labels: Sequence[str]) -> float:
    """Inches a legend with these labels needs (marker and padding included)."""
    return max(map(len, labels)) * CHAR_WIDTH + 0.5 if labels else 0.0


def legend_anchor(fig: Figure) -> tuple[float, float]:
    """Figure coordinates of the top-left corner of the legend column (right of the panels)."""
    params = fig.subplotpars
    return params.right + RIGHT_PAD / 2 / fig.get_figwidth(), params.top


def _facet(enc: Encoding, row: Any, col: Any) -> tuple[str, dict[str, Any]]:
    parts = [(enc.row, row), (enc.col, col)]
    match = {k: v for k, v in parts if k is not None}
    return ", ".join(label(k, v) for k, v in match.items()), match


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
