"""report/index.html: the whole report as one self-contained page (no external assets).

Tables are HTML, plots are embedded PNG data URIs, and a few lines of inline JavaScript sort the
summary table by any column. Every name and value that comes from a run is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from vgx.report.tables import SWEEP, TERMINAL_COLUMNS, TERMINAL_LEGEND
from vgx.status import DONE

if TYPE_CHECKING:
    from vgx.report import Report

PAGE = "index.html"
# Plot sections, in page order: (title, file-name prefixes); unknown plots go to the last one.
SECTIONS = (
    ("Gradient vs layer", ("grad_vs_layer", "act_grad_vs_layer", "update_ratio_vs_layer")),
    ("Heatmaps (layer × step)", ("heatmap",)),
    ("Curves", ("loss", "accuracy")),
    ("Over time steps (recurrent layers)", ("time_",)),
    ("Histograms (Glorot & Bengio 2010, Fig. 6/7)", ("hist_",)),
    ("Other plots", ("",)),
)
SHOWN_METRICS = (*TERMINAL_COLUMNS, "steps_done", "wall_time_s")
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
td.text, th.text { text-align: left; }
td.message { white-space: normal; min-width: 18em; max-width: 40em; text-align: left; }
.scroll { overflow-x: auto; }
th { background: #eee; cursor: pointer; position: sticky; top: 0; }
th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
tr.failed, tr.corrupt { background: #f8d0d0; } tr.diverged { background: #fbe3c4; }
tr.invalid { background: #f3e6a6; } tr.interrupted, tr.running { background: #dde6f5; }
.warnings li { color: #a00; }
.legend, .note { color: #555; font-size: 12px; max-width: 70em; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #555; }
"""
# Click a header to sort by it (again: reverse); numbers (data-v) numerically, missing last.
SCRIPT = """
const sortBy = (th, col) => () => {
  const body = th.closest("table").tBodies[0];
  const up = th.getAttribute("aria-sort") !== "ascending";
  th.parentNode.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", up ? "ascending" : "descending");
  const key = tr => { const td = tr.cells[col]; return td.dataset.v ?? td.textContent; };
  const cmp = (a, b) => {
    const x = key(a), y = key(b);
    if (x === "" || y === "") return (x === "") - (y === "");
    const d = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
    return up ? d : -d;
  };
  Array.from(body.rows).sort(cmp).forEach(tr => body.appendChild(tr));
};
document.querySelectorAll("table.sortable th").forEach((th, col) => {
  th.addEventListener("click", sortBy(th, col));
});
"""


def write_html(report: Report, out_dir: Path, title: str) -> Path:
    """Write the page beside the report's files and return its path."""
    plots = [p for p in report.paths if p.suffix == ".png" and p.exists()]
    body = [
        f"<h1>vgx report: {_esc(title)}</h1>",
        _overview(report.summary, report.varying),
        _warnings(report.warnings),
        "<h2>Runs</h2>",
        _summary_table(report.summary, report.varying),
        f'<p class="legend">{_esc(TERMINAL_LEGEND)}. Every column: <a href="summary.csv">'
        'summary.csv</a>; per layer: <a href="layers.csv">layers.csv</a>.</p>',
        *_plot_sections(plots),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>vgx report: {_esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
    path = Path(out_dir) / PAGE
    path.write_text(page, encoding="utf-8")
    return path


def _overview(summary: pd.DataFrame, varying: Sequence[str]) -> str:
    counts = summary["status"].value_counts()
    statuses = ", ".join(f"{n} {_esc(s)}" for s, n in counts.items())
    keys = ", ".join(_esc(k) for k in varying) or "none"
    return f"<p>{len(summary)} runs: {statuses}. Varying: {keys}.</p>"


def _warnings(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{_esc(w)}</li>" for w in warnings)
    return f'<h2>Problems</h2>\n<ul class="warnings">{items}</ul>'


def _summary_table(summary: pd.DataFrame, varying: Sequence[str]) -> str:
    """One row per run: its identity, varying keys, status, key metrics and message; row class
    = status, so failed, diverged, invalid and corrupt runs stand out."""
    ids = [c for c in (SWEEP, "run") if c in summary.columns]
    keys = [k for k in varying if k not in ids]
    columns = [*ids, "status", *keys, *(c for c in SHOWN_METRICS if c in summary.columns)]
    columns.append("message")
    head = "".join(
        f'<th class="{"text" if _is_text(summary[c]) else "number"}" '
        f'title="{_esc(c)}">{_esc(TERMINAL_COLUMNS.get(c, c))}</th>'
        for c in columns
    )
    rows = []
    for _, row in summary.iterrows():
        status = str(row["status"])
        cells = "".join(_cell(c, row[c], _is_text(summary[c])) for c in columns)
        css = "" if status == DONE else f' class="{_esc(status)}"'
        rows.append(f"<tr{css}>{cells}</tr>")
    return (
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table></div>"
    )


def _cell(column: str, value: Any, text: bool) -> str:
    if _missing(value):
        return '<td data-v=""></td>'
    if column == "message":
        return f'<td class="message">{_esc(value)}</td>'
    if text or isinstance(value, str):
        return f'<td class="text">{_esc(value)}</td>'
    number = float(value)
    shown = f"{number:.4g}" if isinstance(value, float) else str(value)
    key = repr(number).replace("inf", "Infinity")  # as JavaScript's Number() reads it
    return f'<td data-v="{key}">{_esc(shown)}</td>'


def _plot_sections(plots: Sequence[Path]) -> list[str]:
    """The plots under headings by what they show, each embedded as a PNG data URI, after a line
    of links to the headings."""
    placed: set[Path] = set()
    links, parts = [], []
    for number, (heading, prefixes) in enumerate(SECTIONS):
        members = [
            p for p in plots if p not in placed and any(p.stem.startswith(x) for x in prefixes)
        ]
        placed.update(members)
        if members:
            links.append(f'<a href="#plots-{number}">{_esc(heading)}</a>')
            parts.append(f'<h2 id="plots-{number}">{_esc(heading)}</h2>')
            parts += [_figure(p) for p in members]
    return [f"<nav>Plots: {' · '.join(links)}</nav>", *parts] if links else []


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = _esc(path.name)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def _is_text(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _missing(value: Any) -> bool:
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)
