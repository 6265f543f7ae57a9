"""Layer × step heatmaps of the weight gradient, one panel per run, on one shared log scale."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from vgx.report.layout import MAX_PANELS, MAX_SIDE, PANEL, figure_grid, wrap
from vgx.runs import Heatmap

ZERO_COLOR, INF_COLOR, MISSING_COLOR = "black", "red", "0.85"
COLORBAR_GAP = 1.1  # inches between panels: a panel's colour bar, its labels, the next y labels
RIGHT_MARGIN = 0.7  # the last column's colour bar and its tick labels


def pick(n_runs: int, limit: int = MAX_PANELS) -> list[int]:
    """Which of n sorted runs get a panel: all, or `limit` evenly spaced (first and last kept)."""
    if n_runs <= limit:
        return list(range(n_runs))
    return sorted({round(i * (n_runs - 1) / (limit - 1)) for i in range(limit)})


def heatmap_figure(maps: Sequence[tuple[str, Heatmap | None]], total: int, settings: str) -> Figure:
    """grad_norm per layer (y, input at the bottom) and step (x); black where exactly 0. Each
    panel has its own log colour scale: on one shared scale a 40-decade sigmoid run leaves a
    2-decade shallow run one flat colour."""
    ncols = min(MAX_SIDE, math.ceil(math.sqrt(len(maps))))
    nrows = math.ceil(len(maps) / ncols)
    special = _special([m for _, m in maps if m is not None])
    title = _title(len(maps), total, settings, special)
    fig, axes = figure_grid(
        nrows, ncols, title, side=RIGHT_MARGIN, shared_y=False, title_lines=2, gap=COLORBAR_GAP
    )
    for index, ax in enumerate(axes.flat):
        if index >= len(maps):
            fig.delaxes(ax)
            continue
        name, heat = maps[index]
        ax.set_title(wrap(name, PANEL[0]), fontsize=8, y=1.0, pad=4)
        if index % ncols == 0:
            ax.set_ylabel("layer index (input → output)")
        if index + ncols >= len(maps):  # nothing below it
            ax.set_xlabel("training step")
        if heat is None:
            ax.text(0.5, 0.5, "no gradients recorded", transform=ax.transAxes, ha="center",
                    va="center", color="grey")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        norm, cmap = _scale(heat)
        image = ax.imshow(
            _displayable(heat.values, norm),
            aspect="auto",
            origin="lower",
            interpolation="nearest",
            extent=_extent(heat),
            norm=norm,
            cmap=cmap,
        )
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        bar = fig.colorbar(image, cax=_colorbar_axes(fig, ax), extend=_extend(_special([heat])))
        bar.ax.tick_params(labelsize=7)
        bar.ax.yaxis.set_minor_formatter(NullFormatter())  # within a decade: 6 labels overlap
    return fig


def _colorbar_axes(fig: Figure, ax: Axes) -> Axes:
    """A slim axes right of the panel, as tall as it."""
    box = ax.get_position()
    width = fig.get_figwidth()
    return fig.add_axes((box.x1 + 0.08 / width, box.y0, 0.12 / width, box.height))


def _scale(heat: Heatmap) -> tuple[LogNorm, mpl.colors.Colormap]:
    """A run's own log colour scale: zeros get the 'under' colour, inf the 'over' one, NaN the
    'bad' one."""
    values = heat.values.ravel()
    positive = values[np.isfinite(values) & (values > 0)]
    low, high = (positive.min(), positive.max()) if positive.size else (1e-8, 1.0)
    if low == high:
        low, high = low / 10, high * 10
    cmap = mpl.colormaps["viridis"].with_extremes(
        under=ZERO_COLOR, over=INF_COLOR, bad=MISSING_COLOR
    )
    return LogNorm(low, high), cmap


def _special(maps: Sequence[Heatmap]) -> set[str]:
    """Which special values occur: zero, inf, missing."""
    values = np.concatenate([m.values.ravel() for m in maps]) if maps else np.empty(0)
    found = {
        "zero": bool(np.any(values == 0)),
        "inf": bool(np.any(np.isposinf(values))),
        "missing": bool(np.any(np.isnan(values))),
    }
    return {name for name, present in found.items() if present}


def _displayable(values: np.ndarray, norm: LogNorm) -> np.ndarray:
    """Exact zeros just below the scale (drawn black), infinities just above it (drawn red)."""
    assert norm.vmin is not None and norm.vmax is not None, "_scale sets both bounds"
    shown = values.copy()
    shown[shown == 0] = norm.vmin / 10
    shown[np.isposinf(shown)] = norm.vmax * 10
    return shown


def _extent(heat: Heatmap) -> tuple[float, float, float, float]:
    """Cell edges: steps and layers centred on their cells."""
    step = (heat.steps[-1] - heat.steps[0]) / max(1, heat.steps.size - 1) or 1.0
    return (
        heat.steps[0] - step / 2,
        heat.steps[-1] + step / 2,
        heat.layers[0] - 0.5,
        heat.layers[-1] + 0.5,
    )


def _extend(special: set[str]) -> str:
    """Colour-bar triangles for the values below (zero) and above (inf) the scale."""
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        ("zero" in special, "inf" in special), "both"
    )


def _title(shown: int, total: int, settings: str, special: set[str]) -> str:
    lines = [
        "weight gradient ‖∂L/∂W‖ per layer and step, log colour, each run its own scale"
        + (f" — {settings}" if settings else "")
    ]
    if shown < total:
        lines.append(
            f"{shown} of {total} runs shown, evenly spaced in sorted order "
            "(the rest are listed in heatmap_left_out.txt)"
        )
    notes = {
        "zero": "black: exactly 0 (underflow)",
        "inf": "red: inf (overflow)",
        "missing": "grey: not recorded",
    }
    marks = [text for key, text in notes.items() if key in special]
    return "\n".join(lines + (["; ".join(marks)] if marks else []))
