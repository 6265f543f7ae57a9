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

from vgx.report.tables import TERMINAL_COLUMNS, TERMINAL_LEGEND
from vgx.runs import SWEEP
from vgx.status import DONE
from vgx.summary import TRAINED_MEANING

if TYPE_CHECKING:
    from vgx.report import Report
    from vgx.report.conclusions import Conclusions

PAGE = "index.html"
# Plot sections, in page order: (title, file-name prefixes); unknown plots go to the last one.
SECTIONS = (
    ("Gradient vs layer", ("grad_vs_layer", "act_grad_vs_layer", "update_ratio_vs_layer")),
    ("Heatmaps (layer × step)", ("heatmap",)),
    ("Curves", ("loss", "test_loss", "accuracy")),
    ("Over time steps (recurrent layers)", ("time_",)),
    ("Histograms (Glorot & Bengio 2010, Fig. 6/7)", ("hist_",)),
    ("Other plots", ("",)),
)
SHOWN_METRICS = (
    *TERMINAL_COLUMNS,
    "measured_slope",
    "predicted_slope",
    "steps_done",
    "wall_time_s",
)
# One sentence per plot (by file-name prefix, longest match first): what it shows, how to read it.
CAPTIONS = {
    "grad_vs_layer_init": "Weight gradient ‖∂L/∂W‖ of each layer at the first step, input on the "
    "left: a line falling to the left means the early layers get decades less gradient "
    "(vanishing), rising means exploding.",
    "grad_vs_layer_final": "The same weight gradient per layer at the last step: compare with "
    "the first step to see whether training repaired or worsened the imbalance.",
    "act_grad_vs_layer_init": "Back-propagated gradient ‖∂L/∂h‖ of each layer's output at the "
    "first step, with the mean-field prediction dashed: each decade a line falls to the left is a "
    "factor of 10 lost on the way to the input.",
    "act_grad_vs_layer_final": "The back-propagated gradient per layer at the last step: a flat "
    "line means every layer receives a usable signal.",
    "update_ratio_vs_layer": "How far each step moves a layer's weights relative to their size, "
    "averaged over training: around 1e-3 is typical; far lower means the layer barely learns.",
    "heatmap": "Weight gradient per layer (rows, input at the bottom) and training step "
    "(columns), each run on its own log colour scale: a dark band at the bottom is vanishing that "
    "persists through training.",
    "loss": "Training loss per step (log scale): a line that stays flat near its start (2.3 for "
    "10 classes) did not learn.",
    "test_loss": "Loss on the held-out test set at each evaluation: it should fall with the "
    "training loss; rising while training loss falls is overfitting.",
    "accuracy": "Test accuracy at each evaluation: chance is 1/classes (0.1 for digits); a line "
    "stuck there means the run did not train.",
    "time_grad": "Recurrent models: the total gradient ‖∂L/∂h_t‖ of each time step's hidden "
    "state (input steps on the left): a line falling to the left is vanishing through time.",
    "time_cell": "LSTM models: the total gradient ‖∂L/∂c_t‖ of each time step's cell state: the "
    "forget gate's path, flatter than ‖∂L/∂h_t‖ when the cell carries the gradient back.",
    "hist_": "Distributions across units of one quantity per layer at a few steps (Glorot & "
    "Bengio 2010): narrowing peaks toward the input layers show vanishing.",
}
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
figcaption { font-size: 12px; color: #555; max-width: 60em; }
figcaption .file { color: #999; }
#conclusions ul { font-size: 15px; } #conclusions li { margin: 0.2em 0; }
tr.not-trained td { background: #f8d0d0; }
pre.verdict { background: #f4f4f4; padding: 0.5em; white-space: pre-wrap; max-width: 70em; }
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
        _conclusions(report.conclusions),
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


def _conclusions(conclusions: Conclusions | None) -> str:
    """The page's opening: what the sweep shows in sentences, then the verdict of every run."""
    if conclusions is None:
        return ""
    items = "".join(f"<li>{_esc(s)}</li>" for s in conclusions.sentences)
    items += "".join(f'<li class="note">{_esc(n)}</li>' for n in conclusions.notes)
    parts = [f'<section id="conclusions">\n<h2>Conclusions</h2>\n<ul>{items}</ul>']
    if conclusions.experiment is not None:
        parts.append(f'<pre class="verdict">{_esc(conclusions.experiment)}</pre>')
    head = "".join(
        f"<th>{h}</th>"
        for h in ("run", "status", "trained", "test accuracy", "gradients at init",
                  "gradients at the end", "slope measured", "slope predicted")
    )  # fmt: skip
    rows = [
        f'<tr class="{"not-trained" if r.trained is False else "trained"}">'
        f'<td class="text">{_esc(r.title)}</td><td class="text">{_esc(r.status)}</td>'
        f'<td class="text">{_trained_word(r.trained)}</td><td>{_num(r.accuracy, ".2f")}</td>'
        f'<td class="message">{_esc(r.at_init)}</td><td class="message">{_esc(r.at_end)}</td>'
        f"<td>{_num(r.measured_slope, '+.2f')}</td><td>{_num(r.predicted_slope, '+.2f')}</td></tr>"
        for r in conclusions.runs
    ]
    parts.append(
        f'<div class="scroll"><table class="verdicts"><thead><tr>{head}</tr></thead>\n<tbody>'
        + "\n".join(rows)
        + "</tbody></table></div>"
    )
    parts.append(
        '<p class="legend">Verdicts by vgx.diagnosis from ‖∂L/∂h‖, the gradient reaching each '
        "layer's output: vanishing/exploding when a layer is more than 2 decades below/above the "
        f"output layer. Trained: {TRAINED_MEANING}. Slopes: decades per layer from the output "
        "toward the input at the first step "
        "(negative: vanishing), measured by a least-squares fit and predicted by mean-field "
        "theory (plain MLPs only).</p>\n</section>"
    )
    return "\n".join(parts)


def _trained_word(trained: bool | None) -> str:
    return {True: "yes", False: "NO"}.get(trained, "?") if trained is not None else "?"


def _num(value: float, spec: str) -> str:
    return "" if value != value else _esc(format(value, spec))  # NaN: empty


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
        f'<figcaption>{_esc(caption(path.stem))} <span class="file">({name})</span>'
        "</figcaption></figure>"
    )


def caption(stem: str) -> str:
    """The one-sentence caption of a plot, by the longest matching file-name prefix."""
    prefixes = sorted((p for p in CAPTIONS if stem.startswith(p)), key=len, reverse=True)
    return CAPTIONS[prefixes[0]] if prefixes else ""


def _is_text(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _missing(value: Any) -> bool:
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)
