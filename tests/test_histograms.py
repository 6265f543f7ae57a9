"""Log-magnitude histograms: the bins, the probe's `hist` table, and the report's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest_report import write_run
from vgx.histograms import (
    INF,
    N_BINS,
    N_FINITE,
    NAN,
    QUANTITIES,
    ZERO,
    bin_edges,
    hist_rows,
    log_histogram,
)
from vgx.report import build_report
from vgx.report import histogram_plots as plots
from vgx.report.histogram_plots import MAX_RUNS, read_ends
from vgx.store import MetricsWriter, RunDir, find_runs


def counts_of(values: list[float] | torch.Tensor) -> dict[int, int]:
    counts = log_histogram(torch.as_tensor(values, dtype=torch.float32)).numpy()
    return {int(b): int(counts[b]) for b in np.flatnonzero(counts)}


def test_counts_add_up_to_the_number_of_values_with_zeros_nan_and_inf_apart():
    values = torch.randn(1000) * 10.0 ** torch.randint(-40, 30, (1000,))
    values[:7], values[7:10], values[10:12], values[12] = 0.0, float("nan"), float("inf"), -np.inf
    counts = counts_of(values)
    assert sum(counts.values()) == 1000
    assert (counts[ZERO], counts[NAN], counts[INF]) == (7, 3, 3)


def test_every_finite_value_lands_in_the_bin_whose_edges_hold_it():
    exponents = np.random.default_rng(0).uniform(-37.5, 38.0, 500)  # normal floats: exact to ~1e-7
    exponents = exponents[np.abs((exponents * 4 + 0.5) % 1 - 0.5) > 1e-4]  # off the edges
    values = torch.from_numpy(10.0**exponents).float()
    bins = np.floor((exponents + 46) * 4).astype(int) + 1
    assert counts_of(values) == dict(zip(*np.unique(bins, return_counts=True), strict=True))
    lower, upper = bin_edges(bins)
    assert np.all((lower < exponents) & (exponents < upper))


def test_the_sign_is_dropped_and_the_smallest_and_largest_float32_are_not_clipped():
    tiny, huge = float(np.finfo(np.float32).smallest_subnormal), float(np.finfo(np.float32).max)
    assert counts_of([-0.5, 0.5]) == {counts_of([0.5]).popitem()[0]: 2}
    bins = list(counts_of([tiny, huge]))
    assert 1 < bins[0] < bins[1] < N_FINITE


def test_half_precision_values_are_counted_as_float32():
    values = torch.tensor([1e-5, 0.0, 3.0, 60000.0])
    assert counts_of(values.half().float()) == counts_of(values.half())  # type: ignore[arg-type]


def test_hist_rows_are_long_and_sparse_with_the_layer_positions_given():
    counts = np.zeros((2, len(QUANTITIES), N_BINS))
    counts[0, 0, 5], counts[1, 2, ZERO], counts[1, 2, 200] = 3, 4, 1
    rows = hist_rows(7, counts, [4, 9])
    assert rows["layer"].tolist() == [4, 9, 9]
    assert rows["quantity"].tolist() == ["grad", "act", "act"]
    assert rows["bin"].tolist() == [5, ZERO, 200]
    assert rows["count"].tolist() == [3, 4, 1] and set(rows["step"]) == {7}


def write_histograms(run: RunDir, steps: int, depth: int) -> None:
    """Layer l's values spread around 10^-l, so that each layer has its own peak."""
    generator = torch.Generator().manual_seed(0)
    with MetricsWriter(run.metrics_dir) as writer:
        for step in range(steps):
            counts = np.stack(
                [
                    np.stack(
                        [
                            log_histogram(torch.randn(32, 32, generator=generator) * 10.0**-layer)
                            for _ in QUANTITIES
                        ]
                    )
                    for layer in range(depth)
                ]
            )
            writer.append("hist", hist_rows(step, counts, range(depth)))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hist")
    for depth in range(2, 4 + MAX_RUNS):
        write_histograms(write_run(root, f"depth={depth}", depth=depth), 3, depth)
    write_run(root, "depth=99", depth=99, steps=2)  # recorded no histograms
    return root


def test_the_report_draws_one_histogram_figure_per_quantity(tmp_path):
    write_histograms(write_run(tmp_path, "depth=3", depth=3), 2, 3)
    names = {p.name for p in build_report(tmp_path, echo=False).paths}
    assert {f"hist_{q}.png" for q in QUANTITIES} <= names


def test_only_the_first_and_last_recorded_step_are_read(sweep):
    ends = read_ends(sweep / "depth=3", "depth=3")
    assert ends is not None and ends.steps == (0, 2)
    assert set(ends.rows["step"]) == {0, 2}
    assert ends.rows.groupby(["step", "layer", "quantity"])["count"].sum().eq(32 * 32).all()


def test_the_figures_draw_at_most_max_runs_and_say_how_many_had_histograms(sweep, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "render", lambda path, build, args: drawn.append(args) or path)
    plots.histogram_figures(sweep / "report", [r.path for r in find_runs(sweep)], ["t"] * 9)
    runs, _, note = drawn[0]
    assert len(runs) == MAX_RUNS and f"of {MAX_RUNS + 2} runs" in note


def test_a_run_without_histograms_is_not_drawn(sweep):
    assert read_ends(sweep / "depth=99", "depth=99") is None


def test_without_histograms_there_is_no_histogram_figure(tmp_path):
    run = write_run(tmp_path, "depth=2", depth=2)
    assert plots.histogram_figures(tmp_path, [run.path], ["depth=2"]) == []
