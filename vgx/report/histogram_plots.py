"""hist_<quantity>.png: per-layer distributions drawn as Glorot & Bengio (2010, Fig. 6/7) did.

One line per layer (coloured input → output), all layers of a run in one panel; a row per run,
its first and last recorded step side by side. The x axis is log10|x| (table `hist`), so
vanishing values stay visible; exact zeros and NaN/Inf are drawn as points at either end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vgx.histograms import INF, N_FINITE, NAN, QUANTITIES, ZERO, bin_edges
from vgx.report.layout import PANEL, figure_grid
from vgx.report.parallel import Drawn, render
from vgx.store import chunk_files

MAX_RUNS = 6  # rows of a histogram figure
GAP = 0.15  # of the finite span: between it and the zero (left) or NaN/Inf (right) points
COLORBAR = 1.1  # inches right of the panels
TITLES = {
    "act": "activation values |h| (activation-function outputs)",
    "act_grad": "back-propagated gradients |∂L/∂(layer output)|",
    "grad": "weight gradients |∂L/∂W|",
}


@dataclass(frozen=True)
class RunHistograms:
    """One run's `hist` rows at its first and last recorded step."""

    title: str
    steps: tuple[int, int]
    rows: pd.DataFrame  # step, layer, quantity, bin, count


def histogram_figures(out: Path, runs: Sequence[Path], titles: Sequence[str]) -> list[Drawn]:
    """Write hist_<quantity>.png for the first MAX_RUNS runs that recorded histograms."""
    found = [h for p, t in zip(runs, titles, strict=True) if (h := read_ends(p, t)) is not None]
    shown = found[:MAX_RUNS]
    note = f" (first {len(shown)} of {len(found)} runs with histograms)" if found[MAX_RUNS:] else ""
    quantities = [q for q in QUANTITIES if any((h.rows["quantity"] == q).any() for h in shown)]
    return [render(out / f"hist_{q}.png", histogram_figure, (shown, q, note)) for q in quantities]


def read_ends(run: Path, title: str) -> RunHistograms | None:
    """The first and last recorded step's histograms; only those rows are read (a run that took
    histograms every step holds millions), None when the run recorded none or they are torn."""
    files = chunk_files(Path(run) / "metrics", "hist")
    if not files:
        return None
    try:
        first = int(pq.read_table(files[0], columns=["step"])["step"].to_numpy().min())
        last = int(pq.read_table(files[-1], columns=["step"])["step"].to_numpy().max())
        ends = [("step", "in", [first, last])]
        rows = pa.concat_tables([pq.read_table(f, filters=ends) for f in files]).to_pandas()
    except (OSError, pa.ArrowException):
        return None  # the report's tables already say the run is corrupt
    return RunHistograms(title, (first, last), rows)


def histogram_figure(runs: Sequence[RunHistograms], quantity: str, note: str) -> Figure:
    """A row per run, its first and last step side by side; one line per layer."""
    data = [h.rows[h.rows["quantity"] == quantity] for h in runs]
    finite = pd.concat([d[(d["bin"] >= 1) & (d["bin"] <= N_FINITE)] for d in data])
    low, high = bin_edges(np.array([finite["bin"].min(), finite["bin"].max()]))
    span = (float(low[0]), float(high[1])) if len(finite) else (-1.0, 1.0)
    title = f"{TITLES[quantity]} per layer, log10 scale{note}"
    fig, axes = figure_grid(len(runs), 2, title, side=COLORBAR, shared_y=False)
    for row, (run, rows) in enumerate(zip(runs, data, strict=True)):
        for col, step in enumerate(run.steps):
            ax = axes[row, col]
            _panel(ax, rows[rows["step"] == step], span)
            ax.set_title(f"{run.title}: step {step}", fontsize=9)
    params = fig.subplotpars
    width, height = fig.get_figwidth(), fig.get_figheight()
    cax = fig.add_axes((params.right + 0.35 / width, params.bottom, 0.15 / width,
                        min(PANEL[1] / height, params.top - params.bottom)))  # fmt: skip
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), mpl.colormaps["viridis"]), cax=cax)
    bar.set_ticks([0, 1], labels=["input", "output"])
    bar.set_label("layer")
    return fig


def _panel(ax: Axes, rows: pd.DataFrame, span: tuple[float, float]) -> None:
    """Fraction of each layer's values per bin over log10|x|; zeros left, NaN/Inf right."""
    cmap = mpl.colormaps["viridis"]
    layers = np.sort(rows["layer"].unique())
    gap = GAP * (span[1] - span[0]) + 0.5
    zero_at, odd_at = span[0] - gap, span[1] + gap
    odd_seen = False
    for position, layer in enumerate(layers):
        mine = rows[rows["layer"] == layer]
        fraction = mine.set_index("bin")["count"] / mine["count"].sum()
        color = cmap(position / max(len(layers) - 1, 1))
        bins = np.arange(1, N_FINITE + 1)
        lower, upper = bin_edges(bins)
        y = fraction.reindex(bins, fill_value=0.0).to_numpy()
        keep = slice(*np.searchsorted((lower + upper) / 2, span))
        ax.plot(((lower + upper) / 2)[keep], y[keep], color=color, lw=1)
        ax.plot([zero_at], [fraction.get(ZERO, 0.0)], "o", color=color, ms=3)
        odd = fraction.get(INF, 0.0) + fraction.get(NAN, 0.0)
        if odd:
            ax.plot([odd_at], [odd], "x", color=color, ms=4)
            odd_seen = True
    ticks = [t for t in MaxNLocator(5, integer=True).tick_values(*span) if span[0] <= t <= span[1]]
    labels = ["0", *(f"1e{t:.0f}" for t in ticks)]
    ax.set_xticks([zero_at, *ticks, *([odd_at] if odd_seen else [])])
    ax.set_xticklabels([*labels, *(["inf/nan"] if odd_seen else [])])
    ax.set_xlim(zero_at - gap / 2, odd_at + gap / 2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("|value| (bins: powers of two)", fontsize=8)
    ax.set_ylabel("fraction of values", fontsize=8)
    ax.tick_params(labelsize=7)
