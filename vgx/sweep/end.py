"""The end of a sweep (or of one run): the report, the verdict table and, for a canned
experiment, whether the sweep shows the published result — all from the one read of the runs
that builds the report."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from vgx.report import build_report, echo_report
from vgx.store import atomic_write_text, writable_dir
from vgx.sweep.progress import ReportProgress
from vgx.sweep.verdict import verdict_table


def write_report(sweep_dir: Path) -> None:
    """Build the report of `sweep_dir` and print what it concludes."""
    runs = sum(1 for _ in Path(sweep_dir).rglob("status.json"))
    if runs:  # checked before the bar starts, so that the error stays one line
        writable_dir(Path(sweep_dir) / "report", "the report directory")
    with ReportProgress(runs) if runs else nullcontext():  # no runs: build_report says why
        report = build_report(sweep_dir, echo=False)
    echo_report(report, sweep_dir)
    print(f"\n{verdict_table(report.summary, report.layers, report.varying)}")
    verdict = report.conclusions.experiment if report.conclusions else None
    if verdict is not None:
        print(f"\n{verdict}")
        atomic_write_text(Path(sweep_dir) / "report" / "experiment.txt", f"{verdict}\n")
