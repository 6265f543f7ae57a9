"""How runs map onto a figure: which varying key colours the lines, which ones facet the panels."""

from __future__ import annotations

import math
import textwrap
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from vgx.runs import sort_key

MAX_PANELS = 36  # 6 × 6: beyond this a panel is too small to read
MAX_SIDE = 6
# Figure geometry in inches (fonts at matplotlib's default sizes).
PANEL = (3.0, 2.2)  # one panel's axes
LEFT, BOTTOM = 0.9, 0.55  # y tick labels and y label; x tick labels and x label
ROW_GAP = 0.95  # between panel rows: x tick labels, x label, the next panel's title
INNER_GAP, TICKS_GAP = 0.2, 0.55  # between columns: shared y (no tick labels), own y tick labels
TOP_PAD, TITLE_LINE, PANEL_TITLE = 0.2, 0.2, 0.3
PANEL_TITLE_LINE = 0.17  # each further line of a wrapped panel title (9 pt)
PANEL_TITLE_CHARS = 40  # characters of a 9-pt panel title that fit a panel's width
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


def _listed_colors(name: str) -> tuple[Any, ...]:
    """The colours of a qualitative colormap, which matplotlib keeps as a ListedColormap."""
    colormap = mpl.colormaps[name]
    assert isinstance(colormap, ListedColormap), f"{name} is not a list of colours"
    # The stubs type `colors` as any ArrayLike or one colour; a qualitative map holds a sequence.
    return tuple(cast(Sequence[Any], colormap.colors))


# Qualitative colours for named values: a value's colour is its place in its registry (act=relu
# is the same colour in every report and compare); tab10, then Dark2 and Set1 for long registries.
QUALITATIVE = (*_listed_colors("tab10"), *_listed_colors("Dark2"), *_listed_colors("Set1"))
LINE_STYLES = ("-", "--", ":", "-.")  # the sweeps of a compare, in order


@dataclass(frozen=True)
class Encoding:
    """Varying keys drawn as colour, line style, panel column, panel row; `lines` are further
    keys whose runs are drawn as separate lines of the same colour, and `band` the seed keys
    among them: their runs are drawn as one mean line with the spread as a band. `palette` maps
    each displayed colour value to its colour (decided once, the same in every figure)."""

    color: str | None = None
    col: str | None = None
    row: str | None = None
    lines: tuple[str, ...] = ()
    style: str | None = None
    band: tuple[str, ...] = ()
    palette: tuple[tuple[str, Any], ...] = ()


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
    summary: pd.DataFrame, varying: Sequence[str], line_style: str | None = None
) -> Encoding:
    """Colour by the categorical key with the fewest values; the `line_style` key (the sweep of
    a compare), if varying, as line styles, so equal values of different sweeps share a panel;
    facet by the next two keys; replicate keys (`*seed`) become a band around the mean."""
    replicates = tuple(k for k in varying if k.rsplit(".", 1)[-1] == "seed")
    style = line_style if line_style in varying else None
    keys = [k for k in varying if k not in replicates and k != style]
    count = {k: summary[k].nunique(dropna=False) for k in keys}
    rest = sorted(keys, key=lambda k: (pd.api.types.is_numeric_dtype(summary[k]), count[k]))
    color, others = (rest[0], rest[1:]) if rest else (None, [])
    facets = sorted(others, key=lambda k: count[k], reverse=True)[:2]
    col, row = [*facets, None, None][:2]
    palette = tuple(colors(summary[color], color).items()) if color else ()
    lines = replicates + tuple(k for k in others if k not in facets)
    return Encoding(color, col, row, lines, style, replicates, palette)


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


def colors(column: pd.Series, key: str | None = None) -> dict[Any, Any]:
    """A colour per displayed value: the same for a value in every figure (its registry index,
    else a hash of key=value) for names; an ordered colormap for numbers."""
    values = ordered_values(column)
    if pd.api.types.is_numeric_dtype(column) and len(values) > 1:
        cmap = mpl.colormaps["viridis"]
        return {format_value(v): cmap(0.9 * i / (len(values) - 1)) for i, v in enumerate(values)}
    names = registry_names(key)
    return {format_value(v): QUALITATIVE[_slot(key, v, names)] for v in values}


def registry_names(key: str | None) -> list[str]:
    """The registered choices of a config key in registry order ([] for other keys)."""
    from vgx.data import DATASETS
    from vgx.models import ACTIVATIONS, INITS, MODELS, NORMS, RECURRENT_INITS, SKIPS
    from vgx.optim import OPTIMIZERS

    registries = (ACTIVATIONS, INITS, MODELS, NORMS, RECURRENT_INITS, SKIPS, DATASETS, OPTIMIZERS)
    return next((list(r) for r in registries if r.key == key), [])


def _slot(key: str | None, value: Any, names: list[str]) -> int:
    """A value's palette index: its registry position, else a hash of `key=value`."""
    shown = format_value(value)
    if shown in names:
        return names.index(shown) % len(QUALITATIVE)
    return zlib.crc32(f"{key}={shown}".encode()) % len(QUALITATIVE)


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
    nrows: int,
    ncols: int,
    title: str,
    side: float = 0.0,
    shared_y: bool = True,
    title_lines: int = 1,
    gap: float | None = None,
) -> tuple[Figure, np.ndarray]:
    """nrows × ncols panels of fixed size with margins in inches and `side` inches on the right
    (legend, colour bar); `title_lines`: lines of the longest panel title; `gap`: inches between
    columns (default: by shared_y). Fixed margins instead of constrained layout: a 36-panel figure
    renders several times faster, and nothing overlaps because every text has its reserved space."""
    right = RIGHT_PAD + side
    wspace = gap if gap is not None else INNER_GAP if shared_y else TICKS_GAP
    extra = PANEL_TITLE_LINE * (title_lines - 1)  # wrapped panel titles
    row_gap = ROW_GAP + extra
    width = LEFT + ncols * PANEL[0] + (ncols - 1) * wspace + right
    body = BOTTOM + nrows * PANEL[1] + (nrows - 1) * row_gap
    text = wrap(title, width)
    top = TOP_PAD + TITLE_LINE * (text.count("\n") + 1) + PANEL_TITLE + extra
    height = body + top
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=LEFT / width,
        right=1 - right / width,
        bottom=BOTTOM / height,
        top=1 - top / height,
        wspace=wspace / PANEL[0],
        hspace=row_gap / PANEL[1],
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    if shared_y:  # the caller gives every panel the same y range: one column of y tick labels
        for ax in axes[:, 1:].flat:
            ax.tick_params(which="both", labelleft=False)
    fig.suptitle(text, y=1 - TOP_PAD / 2 / height, va="top", fontsize=10)
    return fig, axes


def panel_title(text: str) -> str:
    """A panel title wrapped to the panel's width (long titles would run into the next one)."""
    return textwrap.fill(text, PANEL_TITLE_CHARS, break_on_hyphens=False)


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
