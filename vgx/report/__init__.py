"""`vgx report` and `vgx compare`: tables and plots that show where gradients vanish or explode.

Reads run directories (never writes in them) and writes only under the report directory.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from vgx.errors import EnvironmentProblem, VgxError
from vgx.report.conclusions import Conclusions, conclude
from vgx.report.heatmap import heatmap_figure, pick
from vgx.report.histogram_plots import histogram_figures
from vgx.report.html import write_html
from vgx.report.layout import choose_encoding, fixed_settings, label
from vgx.report.parallel import mapper, render
from vgx.report.plots import curves, layer_profile, time_profile
from vgx.report.tables import TERMINAL_LEGEND, by_configuration, seed_keys, terminal_table
from vgx.report.theory_overlay import predicted_lines
from vgx.runs import SWEEP, Heatmap, Sweep, find_sweep_runs, read_runs
from vgx.status import DONE
from vgx.store import UMASK, writable_dir

MAX_WARNINGS = 20  # warning lines printed; the rest are in summary.csv (status, message)


@dataclass
class Report:
    """What a report found and wrote: summary.csv and layers.csv as frames, and the files."""

    summary: pd.DataFrame
    layers: pd.DataFrame
    paths: list[Path] = field(default_factory=list)
    varying: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conclusions: Conclusions | None = None


def build_report(sweep_dir: Path, out_dir: Path | None = None, echo: bool = True) -> Report:
    """Tables and plots for every run below `sweep_dir`, written to `out_dir` (sweep/report)."""
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    return _swapped_in([(None, sweep_dir)], out, echo)


def compare(dirs: Sequence[Path], out_dir: Path, echo: bool = True) -> Report:
    """The same report over several sweeps, with a `sweep` column and the sweeps side by side."""
    dirs = [Path(d) for d in dirs]
    return _swapped_in(list(zip(sweep_labels(dirs), dirs, strict=True)), Path(out_dir), echo)


def _swapped_in(sources: list[tuple[str | None, Path]], out: Path, echo: bool) -> Report:
    """Build the report in a sibling temporary directory, then swap it in for the old one.

    A kill at any moment leaves the old report or the new one whole (plus, at worst, a hidden
    `.NAME.*` sibling), never a mix; each build has its own temporary name, so two builds at
    once never write into each other's files.
    """
    writable_dir(out, "the report directory")
    for _, root in sources:
        if not root.is_dir():
            raise VgxError(f"{'not a directory' if root.exists() else 'no such directory'}: {root}")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    os.chmod(work, 0o777 & ~UMASK)  # mkdtemp makes 0700; a report is as open as mkdir makes it
    try:
        report = _report(sources, work, out)
        asides = _swap(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for aside in asides:
        shutil.rmtree(aside, ignore_errors=True)
    report.paths = [out / p.name for p in report.paths]
    if echo:
        _echo(report, sources)
    return report


def sweep_labels(dirs: Sequence[Path]) -> list[str]:
    """Each sweep's directory name, with parent names added until the names differ."""
    parts = [Path(d).resolve().parts[1:] or ("/",) for d in dirs]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{p[-1]}#{i + 1}" for i, p in enumerate(parts)]  # the same directory twice


def _swap(work: Path, out: Path, tries: int = 5) -> list[Path]:
    """Rename the old report aside and `work` in its place; returns what was put aside.

    Another build swapping in between our two renames makes the second fail (the name is taken
    again): that report is put aside too, and the newest build wins.
    """
    asides: list[Path] = []
    for attempt in range(tries):
        if out.exists():
            asides.append(work.with_name(f"{work.stem}.old{attempt}"))
            os.rename(out, asides[-1])
        try:
            os.rename(work, out)
            return asides
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    raise EnvironmentProblem(f"cannot swap the new report into {out}: it keeps being replaced")


def _report(sources: list[tuple[str | None, Path]], work: Path, out: Path) -> Report:
    """Every table and figure of the report, written into `work` (runs under `out` are not read).

    A figure that cannot be drawn from what the runs hold is left out and listed, never raised.
    """
    metas = find_sweep_runs(sources, exclude=out)
    with mapper(len(metas)) as map_:
        sweep = read_runs(metas, map_, heatmaps=pick)
        summary, varying = sweep.summary, sweep.varying
        paths = _write_tables(sweep, work)
        titles = [_run_title(row, varying) for _, row in summary.iterrows()]
        heat = pick(len(summary))
        if len(heat) < len(summary):
            paths.append(work / "heatmap_left_out.txt")
            shown = set(heat)
            paths[-1].write_text("".join(f"{t}\n" for i, t in enumerate(titles) if i not in shown))
        maps = [(titles[i], sweep.heatmaps[i]) for i in heat]
        jobs = _figures(sweep, maps)
        pngs = [work / f"{name}.png" for name in jobs]
        drawn = list(
            map_(render, pngs, [b for b, _ in jobs.values()], [a for _, a in jobs.values()])
        )
    drawn += histogram_figures(work, [m.path for _, m in metas], titles)
    warnings = [
        _warning(row, notes)
        for (_, row), notes in zip(summary.iterrows(), sweep.notes, strict=True)
        if row["status"] != DONE or notes
    ]
    warnings += [f"warning: not drawn: {d.path.name}: {d.error}" for d in drawn if d.error]
    paths += [d.path for d in drawn if not d.error]
    where = ", ".join(str(root) for _, root in sources)
    conclusions = conclude(sweep, titles, Path(where))
    report = Report(summary, sweep.layers, paths, varying, warnings, conclusions)
    report.paths.append(write_html(report, work, where))
    return report


def _write_tables(sweep: Sweep, out: Path) -> list[Path]:
    """summary.csv, layers.csv and, when a seed varies, summary_by_config.csv."""
    paths = [out / "summary.csv", out / "layers.csv"]
    sweep.summary.to_csv(paths[0], index=False)
    sweep.layers.to_csv(paths[1], index=False)
    if seed_keys(sweep.varying):
        paths.append(out / "summary_by_config.csv")
        by_configuration(sweep.summary, sweep.varying).to_csv(paths[-1], index=False)
    return paths


def _figures(
    sweep: Sweep, maps: list[tuple[str, Heatmap | None]]
) -> dict[str, tuple[Callable[..., Figure], tuple[Any, ...]]]:
    """Every plot of the report as a job: file name (without .png) -> (builder, its arguments)."""
    summary, varying, layers = sweep.summary, sweep.varying, sweep.layers
    ids = [c for c in (SWEEP, "run") if c in summary.columns]
    enc = choose_encoding(summary, varying, line_style=SWEEP)
    settings = fixed_settings(summary, varying)
    jobs: dict[str, tuple[Callable[..., Figure], tuple[Any, ...]]] = {}
    for stage in ("init", "final"):
        for metric, name in (("grad_norm", "grad"), ("act_grad_norm", "act_grad")):
            args: tuple[Any, ...] = (layers, enc, metric, stage, settings, ids)
            if (metric, stage) == ("act_grad_norm", "init"):  # what the theory predicts
                args += (partial(predicted_lines, summary, f"{metric}_{stage}"),)
            jobs[f"{name}_vs_layer_{stage}"] = (layer_profile, args)
    args = (layers, enc, "update_ratio", "mean", settings, ids)
    jobs["update_ratio_vs_layer"] = (layer_profile, args)
    curve_data = {"loss": sweep.steps, "test_loss": sweep.evals, "accuracy": sweep.evals}
    for curve, frame in curve_data.items():
        jobs[curve] = (curves, (frame, enc, curve, settings, ids))
    time = sweep.times
    for column, name in (("hidden_grad_norm", "time_grad"), ("cell_grad_norm", "time_cell")):
        if len(time) and time[column].notna().any():
            for stage in ("init", "final"):
                args = (time, enc, stage, settings, ids, column)
                jobs[f"{name}_{stage}"] = (time_profile, args)
    jobs["heatmap_grad_norm"] = (heatmap_figure, (maps, len(summary), settings))
    return jobs


def _run_title(row: pd.Series, varying: Sequence[str]) -> str:
    """A run named by its varying keys ('sweep-a, act=relu, depth=10'), else by its path."""
    head = [str(row[SWEEP])] if SWEEP in varying else []
    keys = [label(k, row[k]) for k in varying if k != SWEEP]
    return ", ".join(head + (keys or [str(row["run"])]))


def _warning(row: pd.Series, notes: list[str]) -> str:
    where = f"{row[SWEEP]}/{row['run']}" if SWEEP in row else row["run"]
    details = [d for d in (row["message"], *notes) if d]
    return f"warning: {where}: {row['status']}" + (f": {'; '.join(details)}" if details else "")


def echo_report(report: Report, sweep_dir: Path) -> None:
    """Print what build_report(..., echo=False) would have printed."""
    _echo(report, [(None, Path(sweep_dir))])


def _echo(report: Report, sources: list[tuple[str | None, Path]]) -> None:
    for line in report.warnings[:MAX_WARNINGS]:
        print(line)
    if len(report.warnings) > MAX_WARNINGS:
        more = len(report.warnings) - MAX_WARNINGS
        print(f"... and {more} more warnings (see columns status and message of summary.csv)")
    where = ", ".join(str(root) for _, root in sources)
    varying = ", ".join(report.varying) or "none"
    print(f"\n{len(report.summary)} runs in {where} (varying: {varying})")
    print(terminal_table(report.summary, report.varying))
    print(TERMINAL_LEGEND)
    print(f"\nreport written to {report.paths[0].parent}:")
    for path in report.paths:
        print(f"  {path.name}")
