"""Line figures of a sweep: one line per run, coloured by one varying key, faceted by up to two.

Functions return Figures (nothing is saved here), so tests can inspect axes, scales and labels.
Lines are drawn as one LineCollection per panel and colour, which keeps a 1,000-run figure fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from vgx.report import layout

# Theory-overlay seam: called once per panel of the gradient-vs-layer figures with the panel's
# axes and its rows of layers.csv (ids, varying keys, layer, metrics); it draws a predicted line
# (e.g. a slope in decades per layer). Settings every run shares are not in those rows: bind the
# summary frame with functools.partial (figures may be rendered in worker processes, so the
# overlay must be picklable: a module-level function, not a lambda or closure).
Overlay = Callable[[Axes, pd.DataFrame], None]

LAYER_AXIS = "layer index (input → output)"
STEP_AXIS = "training step"
METRICS = {  # layers.csv metric -> (what it is, axis label with units)
    "grad_norm": ("weight gradient", "‖∂L/∂W‖ (L2)"),
    "act_grad_norm": ("activation gradient", "‖∂L/∂a‖ (L2, layer output)"),
    "update_ratio": ("learning speed", "‖ΔW‖ / ‖W‖ per step"),
}
ZERO_MEANS = {  # what an exact 0 of a metric says, where it is not an underflowed gradient
    "update_ratio": "0: the update was too small to change a float32 weight",
}
STAGES = {
    "init": "at the first step",
    "mean": "averaged over training",
    "final": "at the last step",
}
LINE = "_line"  # column numbering the runs of a figure's data
LOW, HIGH = "_low", "_high"  # the band's edges when runs of several seeds make one line
MANY_DECADES = 3  # log axes spanning more: a tick every few decades, no minor ticks
# A figure whose values span more decades than this gets a y range per panel when a panel's own
# span is under half of it: a 40-decade sigmoid panel would flatten a 3-decade ReLU panel.
OWN_RANGE_DECADES = 6
PLAIN = FuncFormatter(lambda value, _: f"{value:.3g}")
MARKERS_UP_TO = 30  # points per line: below this, points are marked (few layers, few evals)


@dataclass(frozen=True)
class Lines:
    """What a line figure draws: columns of the data, axis labels, title, y scale."""

    x: str
    y: str
    xlabel: str
    ylabel: str
    title: str
    logy: bool = True
    integer_x: bool = False
    zero_means: str = "exactly 0 (underflow in the model)"  # the legend entry of the marks for 0


def layer_profile(
    layers: pd.DataFrame,
    enc: layout.Encoding,
    metric: str,
    stage: str,
    settings: str,
    ids: Sequence[str],
    overlay: Overlay | None = None,
) -> Figure:
    """A metric of layers.csv vs layer index (log y): where along the depth gradients vanish."""
    what, unit = METRICS[metric]
    spec = Lines(
        x="layer",
        y=f"{metric}_{stage}",
        xlabel=LAYER_AXIS,
        ylabel=unit,
        title=f"{what} per layer, {STAGES[stage]}",
        integer_x=True,
        zero_means=ZERO_MEANS.get(metric, Lines.zero_means),
    )
    return line_grid(layers, enc, spec, settings, ids, overlay)


def curves(
    frame: pd.DataFrame, enc: layout.Encoding, y: str, settings: str, ids: Sequence[str]
) -> Figure:
    """Training loss, test loss (log y) or test accuracy vs step, one line per run."""
    spec = {
        "loss": Lines("step", "loss", STEP_AXIS, "training loss", "training loss"),
        "test_loss": Lines("step", "loss", STEP_AXIS, "test loss", "test loss (held-out set)"),
        "accuracy": Lines(
            "step", "accuracy", STEP_AXIS, "test accuracy (fraction)", "test accuracy", logy=False
        ),
    }[y]
    return line_grid(frame, enc, spec, settings, ids)


# time-table column -> (y label, title): what each time plot shows (docs/run-directory.md)
TIME_PLOTS = {
    "hidden_grad_norm": ("‖∂L/∂h_t‖ (L2, first recurrent layer)", "gradient through time"),
    "cell_grad_norm": ("‖∂L/∂c_t‖ (L2, first LSTM layer)", "cell-state gradient through time"),
}


def time_profile(
    time: pd.DataFrame,
    enc: layout.Encoding,
    stage: str,
    settings: str,
    ids: Sequence[str],
    column: str = "hidden_grad_norm",
) -> Figure:
    """RNN family: a state's total gradient vs time step (log y): vanishing through time."""
    ylabel, title = TIME_PLOTS[column]
    spec = Lines(
        x="t",
        y=column,
        xlabel="time step t (first → last input)",
        ylabel=ylabel,
        title=f"{title}, {STAGES[stage]}",
        integer_x=True,
    )
    return line_grid(time[time["stage"] == stage], enc, spec, settings, ids)


def line_grid(
    data: pd.DataFrame,
    enc: layout.Encoding,
    spec: Lines,
    settings: str,
    ids: Sequence[str],
    overlay: Overlay | None = None,
) -> Figure:
    """The shared engine: facets from `enc`, a line per run (`ids`) or per configuration with a
    band over seeds (`enc.band`), masked zeros marked.

    Panels share one y range (set once, not through shared axes, whose linked autoscaling costs
    seconds at 36 panels) unless the values span too many decades for one (OWN_RANGE_DECADES)."""
    data = data.sort_values([*ids, spec.x])  # once: panels and colours keep this order
    if enc.band:
        data = _over_seeds(data, enc, spec)
        ids = [k for k in _configuration(enc) if k in data.columns]
    data = data.assign(**{LINE: data.groupby(list(ids), sort=False, dropna=False).ngroup()})
    panel_grid = layout.grid(data, enc)
    palette = (
        (dict(enc.palette) or layout.colors(data[enc.color], enc.color))
        if enc.color
        else {layout.format_value(None): "tab:blue"}
    )
    styles = _styles(data, enc)
    marked = _marked(data, spec)
    marks = _unplottable(data[spec.y], spec.logy)
    handles = _legend_handles(enc, palette, styles, marks, marked, spec)
    ranges = _ranges(data, panel_grid, spec)
    titles = [layout.panel_title(p.title) for p in panel_grid.panels]
    fig, axes = layout.figure_grid(
        panel_grid.nrows,
        panel_grid.ncols,
        _title(spec, settings, enc, panel_grid, own=len(set(ranges)) > 1),
        side=layout.legend_width([str(h.get_label()) for h in handles]),  # every handle has one
        shared_y=len(set(ranges)) == 1,
        title_lines=max((t.count("\n") + 1 for t in titles), default=1),
    )
    for panel, title, ylim in zip(panel_grid.panels, titles, ranges, strict=True):
        ax = axes[panel.row, panel.col]
        rows = layout.select(data, panel.match)
        _draw_panel(ax, rows, enc, spec, palette, styles, ylim, marked)
        ax.set_title(title, fontsize=9, y=1.0, pad=4)  # fixed y: no costly auto-placement
        if overlay is not None and len(rows):
            overlay(ax, rows.drop(columns=[LINE, LOW, HIGH], errors="ignore"))
        ax.set_xlim(_range(rows[spec.x].to_numpy(dtype=np.float64), log=False))
        ax.set_ylim(ylim)
    _finish_axes(fig, axes, panel_grid, spec)
    if handles:
        anchor = layout.legend_anchor(fig)
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=anchor, fontsize=8,
                   frameon=False)  # fmt: skip
    return fig


def _configuration(enc: layout.Encoding) -> list[str]:
    """The keys that tell configurations apart (every encoded key but the seeds)."""
    keys = (enc.color, enc.style, enc.col, enc.row, *enc.lines)
    return [k for k in dict.fromkeys(keys) if k is not None and k not in enc.band]


def _over_seeds(data: pd.DataFrame, enc: layout.Encoding, spec: Lines) -> pd.DataFrame:
    """One row per configuration and x: the mean over seeds (geometric on a log axis, over the
    drawable values) as y, and the smallest and largest seed's value as the band."""
    keys = [k for k in _configuration(enc) if k in data.columns]
    y = data[spec.y].astype(np.float64)
    drawable = np.isfinite(y) & (y > 0) if spec.logy else np.isfinite(y)
    level = np.log10(y.where(drawable)) if spec.logy else y.where(drawable)
    frame = data[[*keys, spec.x]].assign(_level=level, _y=y.where(drawable))
    kept = {c: (c, "first") for c in ("sweep", "run") if c in data.columns and c not in keys}
    frame = frame.assign(**{c: data[c] for c in kept})  # the overlay anchors on the first run
    grouped = frame.groupby([*keys, spec.x], sort=False, dropna=False)
    out = grouped.agg(
        _level=("_level", "mean"), **{LOW: ("_y", "min"), HIGH: ("_y", "max")}, **kept
    )
    out[spec.y] = 10.0 ** out["_level"] if spec.logy else out["_level"]
    return out.drop(columns="_level").reset_index().sort_values([*keys, spec.x], kind="stable")


def _ranges(data: pd.DataFrame, panel_grid: layout.Grid, spec: Lines) -> list[tuple[float, float]]:
    """Each panel's y range: one for all, or each its own when one cannot show them all."""
    columns = [c for c in (spec.y, LOW, HIGH) if c in data.columns]
    values = data[columns].to_numpy(dtype=np.float64).ravel()
    shared = _range(values, spec.logy)
    if not spec.logy or len(panel_grid.panels) < 2:
        return [shared] * len(panel_grid.panels)
    own = [
        _range(layout.select(data, p.match)[columns].to_numpy(dtype=np.float64).ravel(), True)
        for p in panel_grid.panels
    ]
    span = np.log10(shared[1] / shared[0])
    narrow = min(np.log10(high / low) for low, high in own)
    return own if span > OWN_RANGE_DECADES and narrow < span / 2 else [shared] * len(own)


def _styles(data: pd.DataFrame, enc: layout.Encoding) -> dict[str, str]:
    """A line style per value of the style key (the sweeps of a compare)."""
    if enc.style is None:
        return {layout.format_value(None): "-"}
    values = layout.ordered_values(data[enc.style])
    return {
        layout.format_value(v): layout.LINE_STYLES[i % len(layout.LINE_STYLES)]
        for i, v in enumerate(values)
    }


def _marked(data: pd.DataFrame, spec: Lines) -> bool:
    """Whether the lines are short enough that their points are marked (few layers, evals)."""
    longest = data.groupby(LINE)[spec.x].count().max() if len(data) else 0
    return bool(longest <= MARKERS_UP_TO)


def _draw_panel(
    ax: Axes,
    rows: pd.DataFrame,
    enc: layout.Encoding,
    spec: Lines,
    palette: dict[str, Any],
    styles: dict[str, str],
    ylim: tuple[float, float],
    marked: bool,
) -> None:
    """Draw the panel's runs: lines, points where lines are short, bands over seeds, marks for 0
    and inf."""
    if spec.logy:
        _log_axis(ax, ylim)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=spec.integer_x))
    drawn = False
    keys = [k for k in (enc.color, enc.style) if k is not None]
    groups = rows.groupby(keys, sort=False, dropna=False) if keys else [((), rows)]
    for value, group in groups:
        value = dict(zip(keys, value if isinstance(value, tuple) else (value,), strict=True))
        color = palette[layout.format_value(value.get(enc.color))]
        style = styles[layout.format_value(value.get(enc.style))]
        lines = _lines(group, spec.x, spec.y)
        alpha = max(0.3, 1 / np.sqrt(len(lines))) if lines and not enc.band else 1.0
        segments, points, special = _segments(lines, spec.logy)
        collection = LineCollection(
            segments, colors=[color], linewidths=1.3, alpha=alpha, linestyles=style
        )
        ax.add_collection(collection, autolim=False)
        if LOW in group.columns:
            _bands(ax, group, spec.x, color)
        dots = points + (segments if marked else [])
        if dots:
            xy = np.concatenate(dots)
            ax.scatter(xy[:, 0], xy[:, 1], s=10, color=color, alpha=alpha, zorder=3)
        for mark, xs in special.items():
            symbol, height = _MARKS[mark]
            heights = np.full(len(xs), height)
            edge = ax.get_xaxis_transform()  # x in data, y in axes fraction
            ax.scatter(xs, heights, marker=symbol, s=30, color=color, transform=edge, zorder=4)
        drawn |= bool(segments or points or special)
    if not drawn:
        message = "no runs" if not len(rows) else "no data"
        ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.set_xticks([])


def _bands(ax: Axes, group: pd.DataFrame, x: str, color: Any) -> None:
    """The spread over seeds of each configuration: a translucent band from min to max."""
    for _, line in group.groupby(LINE, sort=False):
        low, high = line[LOW].to_numpy(np.float64), line[HIGH].to_numpy(np.float64)
        ax.fill_between(line[x].to_numpy(np.float64), low, high, color=color, alpha=0.2, lw=0)


def _log_axis(ax: Axes, ylim: tuple[float, float]) -> None:
    """A log y axis whose labels read well for any span: a label every few decades over a wide
    span (no minor ticks: hundreds cost seconds), plain numbers within one decade."""
    ax.set_yscale("log")
    decades = np.log10(ylim[1] / ylim[0])
    if decades > MANY_DECADES:
        ax.yaxis.set_major_locator(LogLocator(numticks=6))
        ax.yaxis.set_minor_locator(NullLocator())
    elif decades < 1:
        ax.yaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_minor_formatter(PLAIN)


def _range(values: np.ndarray, log: bool) -> tuple[float, float]:
    """Axis limits around the drawable values with a 5% margin (in decades on a log axis)."""
    drawable = values[np.isfinite(values) & (values > 0)] if log else values[np.isfinite(values)]
    if not drawable.size:
        return (0.1, 10.0) if log else (0.0, 1.0)
    low, high = drawable.min(), drawable.max()
    if log:
        low, high = np.log10(low), np.log10(high)
    pad = 0.05 * (high - low) if high > low else 0.5
    low, high = low - pad, high + pad
    return (10.0**low, 10.0**high) if log else (low, high)


def _lines(frame: pd.DataFrame, x: str, y: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x, y) arrays per run of a frame sorted by run and x, with a LINE code per run."""
    cuts = np.flatnonzero(np.diff(frame[LINE].to_numpy())) + 1
    xs = np.split(frame[x].to_numpy(dtype=np.float64), cuts)
    ys = np.split(frame[y].to_numpy(dtype=np.float64), cuts)
    return [(a, b) for a, b in zip(xs, ys, strict=True) if a.size]


def _segments(lines: list[tuple], logy: bool) -> tuple[list, list, dict[str, np.ndarray]]:
    """Drawable stretches of each line (finite, and positive on a log scale), isolated points,
    and the x positions of values that cannot be drawn: exact zeros and infinities."""
    segments, points = [], []
    special: dict[str, list] = {"zero": [], "inf": []}
    for x, y in lines:
        valid = np.isfinite(y) & (y > 0) if logy else np.isfinite(y)
        index = np.flatnonzero(valid)
        for part in np.split(index, np.flatnonzero(np.diff(index) > 1) + 1):
            if part.size > 1:
                segments.append(np.column_stack([x[part], y[part]]))
            elif part.size == 1:
                points.append(np.column_stack([x[part], y[part]]))
        if logy:
            special["zero"].append(x[y == 0])
        special["inf"].append(x[np.isposinf(y)])
    found = {k: np.concatenate(v) for k, v in special.items() if v}
    return segments, points, {k: v for k, v in found.items() if v.size}


_MARKS = {  # values a log axis cannot show, marked at its bottom (0) or top (inf) edge
    "zero": ("v", 0.025),
    "inf": ("^", 0.975),
}


def _finish_axes(fig: Figure, axes: np.ndarray, panel_grid: layout.Grid, spec: Lines) -> None:
    """Labels on the outer panels only; cells of a wrapped grid without a panel removed."""
    used = {(p.row, p.col) for p in panel_grid.panels}
    for (i, j), ax in np.ndenumerate(axes):
        if (i, j) not in used:
            fig.delaxes(ax)
            continue
        if (i + 1, j) not in used:
            ax.set_xlabel(spec.xlabel)
        if j == 0:
            ax.set_ylabel(spec.ylabel)
        ax.grid(True, which="major", alpha=0.3)


def _unplottable(values: pd.Series, logy: bool) -> list[str]:
    """Which values the y axis cannot show: exact zeros (log scale only) and infinities."""
    y = values.to_numpy(dtype=np.float64)
    found = {"zero": logy and bool(np.any(y == 0)), "inf": bool(np.any(np.isposinf(y)))}
    return [mark for mark, present in found.items() if present]


def _legend_handles(
    enc: layout.Encoding,
    palette: dict,
    styles: dict[str, str],
    marks: list[str],
    marked: bool,
    spec: Lines,
) -> list[Artist]:
    """Entries drawn as the data is: the colour values ('act=relu', with a dot where points are
    marked), the line styles (sweeps), then the marks for 0 and inf."""
    marker, size = ("o", 4) if marked else (None, None)  # None: matplotlib's defaults
    handles: list[Artist] = [
        Line2D(
            [], [], color=color, lw=2, label=f"{enc.color}={value}", marker=marker, markersize=size
        )
        for value, color in palette.items()
        if enc.color
    ]
    if enc.style is not None:
        handles += [
            Line2D([], [], color="0.3", lw=1.3, ls=style, label=f"{enc.style}={value}")
            for value, style in styles.items()
        ]
    if enc.band:
        handles.append(Patch(color="0.6", alpha=0.4, label=f"min–max over {', '.join(enc.band)}"))
    texts = {"zero": spec.zero_means, "inf": "inf (overflow)"}
    return handles + [
        Line2D([], [], ls="", marker=_MARKS[m][0], color="black", label=texts[m]) for m in marks
    ]


def _title(
    spec: Lines, settings: str, enc: layout.Encoding, panel_grid: layout.Grid, own: bool = False
) -> str:
    parts = [spec.title + (f" — {settings}" if settings else "")]
    others = [k for k in enc.lines if k not in enc.band]
    if enc.band:
        parts.append(f"line: mean over {', '.join(enc.band)}; band: their min–max")
    if others:
        parts.append(f"lines of one colour differ in {', '.join(others)}")
    if own:
        parts.append("each panel has its own y range (the values span too many decades for one)")
    if panel_grid.left_out:
        parts.append(
            f"{len(panel_grid.left_out)} panels left out: {', '.join(panel_grid.left_out[:6])}"
            + (" …" if len(panel_grid.left_out) > 6 else "")
        )
    return "\n".join(parts)
