"""Log-magnitude histograms: the bins, the probe's `hist` table, and the report's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tests.conftest_report import write_run
from vgx.errors import ConfigError
from vgx.histograms import (
    INF,
    N_BINS,
    N_FINITE,
    NAN,
    QUANTITIES,
    SUBNORMAL,
    ZERO,
    bin_edges,
    hist_rows,
    layer_counts,
    log_histogram,
)
from vgx.probe import GradientProbe
from vgx.report import build_report
from vgx.report import histogram_plots as plots
from vgx.report.histogram_plots import MAX_RUNS, read_ends
from vgx.store import MetricsWriter, RunDir, find_runs
from vgx.train import execute


def counts_of(values: list[float] | torch.Tensor) -> dict[int, int]:
    counts = log_histogram(torch.as_tensor(values, dtype=torch.float32)).numpy()
    return {int(b): int(counts[b]) for b in np.flatnonzero(counts)}


def test_counts_add_up_to_the_number_of_values_with_zeros_nan_and_inf_apart():
    values = torch.randn(1000) * 10.0 ** torch.randint(-40, 30, (1000,))
    values[:7], values[7:10], values[10:12], values[12] = 0.0, float("nan"), float("inf"), -np.inf
    counts = counts_of(values)
    assert sum(counts.values()) == 1000
    assert (counts[ZERO], counts[NAN], counts[INF]) == (7, 3, 3)


def test_every_finite_value_lands_in_the_octave_whose_edges_hold_it():
    exponents = np.random.default_rng(0).uniform(-125.5, 127.5, 500)  # log2 of normal floats
    exponents = exponents[np.abs((exponents + 0.5) % 1 - 0.5) > 1e-4]  # off the edges
    bins = np.floor(exponents).astype(int) + 128
    counts = counts_of(torch.from_numpy(2.0**exponents).float())
    assert counts == dict(zip(*np.unique(bins, return_counts=True), strict=True))
    lower, upper = bin_edges(bins)
    assert np.all((lower < exponents * np.log10(2)) & (exponents * np.log10(2) < upper))


def test_the_sign_is_dropped_and_subnormals_and_the_largest_float32_are_not_clipped():
    tiny, huge = float(np.finfo(np.float32).smallest_subnormal), float(np.finfo(np.float32).max)
    assert counts_of([-0.5, 0.5]) == {127: 2}
    assert counts_of([tiny, -1e-40, huge]) == {SUBNORMAL: 2, N_FINITE: 1}
    assert bin_edges(np.array([SUBNORMAL]))[0][0] == pytest.approx(np.log10(tiny), abs=1e-3)


def test_half_precision_values_are_counted_as_float32():
    values = torch.tensor([1e-5, 0.0, 3.0, 60000.0])
    assert counts_of(values.half().float()) == counts_of(values.half())  # type: ignore[arg-type]


def test_hist_rows_are_long_and_sparse():
    counts = np.zeros((2, len(QUANTITIES), N_BINS))
    counts[0, 0, 5], counts[1, 2, ZERO], counts[1, 2, 200] = 3, 4, 1
    rows = hist_rows(7, counts)
    assert rows["layer"].tolist() == [0, 1, 1]
    assert rows["quantity"].tolist() == ["grad", "act", "act"]
    assert rows["bin"].tolist() == [5, ZERO, 200]
    assert rows["count"].tolist() == [3, 4, 1] and set(rows["step"]) == {7}


def test_counts_of_several_calls_or_weights_of_a_layer_add_up():
    flat = np.ones(3 * N_BINS)
    counts = layer_counts([(1, 0), (1, 0), (0, 2)], flat, n_layers=2)
    assert counts[1, 0].sum() == 2 * N_BINS and counts[0, 2].sum() == N_BINS
    assert counts.sum() == 3 * N_BINS


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
            writer.append("hist", hist_rows(step, counts))


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


def probed(hist_every: int, steps: int = 3, every: int = 1) -> tuple[pd.DataFrame, nn.Module]:
    """The `hist` frame of a small tanh/ReLU MLP trained `steps` steps under a GradientProbe."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3))
    with GradientProbe(model, every=every, hist_every=hist_every) as probe:
        for step in range(steps):
            loss = model(torch.randn(4, 5)).square().sum()
            model.zero_grad()
            loss.backward()
            probe.capture(step, loss)
            probe.commit()
    return probe.frames()["hist"], model


def test_the_probe_counts_every_value_of_each_layer_and_quantity():
    frame, _ = probed(hist_every=1, steps=1)
    totals = frame.groupby(["layer", "quantity"])["count"].sum().to_dict()
    batch = 4
    assert totals == {
        (0, "grad"): 35, (0, "act_grad"): batch * 7, (0, "act"): batch * 7,
        (1, "grad"): 42, (1, "act_grad"): batch * 6, (1, "act"): batch * 6,
        (2, "grad"): 18, (2, "act_grad"): batch * 3, (2, "act"): batch * 3,
    }  # fmt: skip


def test_weight_gradient_histograms_equal_counting_the_gradients_themselves():
    frame, model = probed(hist_every=1, steps=1)
    for layer, module in enumerate(m for m in model if isinstance(m, nn.Linear)):
        rows = frame[(frame["layer"] == layer) & (frame["quantity"] == "grad")]
        expected = log_histogram(module.weight.grad)
        assert dict(zip(rows["bin"], rows["count"], strict=True)) == {
            int(b): int(expected[b]) for b in expected.nonzero().flatten()
        }


def test_relu_zeros_are_counted_as_exact_zeros():
    frame, _ = probed(hist_every=1, steps=1)
    act = frame[(frame["layer"] == 1) & (frame["quantity"] == "act")]
    assert act.loc[act["bin"] == ZERO, "count"].sum() > 0  # some ReLU units are off


def test_histograms_are_taken_at_probed_steps_that_are_multiples_of_hist_every():
    assert sorted(set(probed(hist_every=2, steps=5)[0]["step"])) == [0, 2, 4]
    assert sorted(set(probed(hist_every=3, steps=7, every=2)[0]["step"])) == [0, 6]


def test_histograms_are_off_by_default():
    assert len(probed(hist_every=0)[0]) == 0


def test_a_negative_hist_every_is_a_config_error():
    with pytest.raises(ConfigError, match="hist_every=-1"):
        GradientProbe(nn.Linear(2, 2), hist_every=-1)


def test_a_run_with_probe_hist_every_writes_the_hist_table(make_cfg, tmp_path):
    cfg = make_cfg("steps=3", "depth=2", "width=4", "threads=1", "probe.hist_every=2")
    assert execute(cfg, tmp_path / "run")[0] == "done"
    assert set(RunDir(tmp_path / "run").read_table("hist")["step"]) == {0, 2}
