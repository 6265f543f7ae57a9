"""The report's figures: scales, labels, legends, facets, and values a log axis cannot show."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import LogNorm

from tests.conftest_report import write_run
from vgx.report import Report, build_report
from vgx.report.heatmap import heatmap_figure, pick
from vgx.report.layout import Encoding, choose_encoding, colors, fixed_settings
from vgx.report.plots import curves, layer_profile, time_profile
from vgx.runs import Heatmap

IDS = ["run"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    root = tmp_path_factory.mktemp("sweep")
    for act, depth in itertools.product(("sigmoid", "relu"), (2, 4, 6)):
        write_run(root, f"act={act},depth={depth}", act=act, depth=depth)
    return build_report(root, echo=False)


@pytest.fixture(scope="module")
def enc(report: Report) -> Encoding:
    return choose_encoding(report.summary, report.varying)


def legend_labels(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def panels(fig) -> list:
    return [ax for ax in fig.axes if ax.get_title()]


def test_colour_is_the_categorical_key_and_panels_facet_the_numeric_one(enc):
    assert (enc.color, enc.col, enc.row) == ("act", "depth", None)


def test_gradient_vs_layer_has_a_log_y_axis_with_labelled_units(report, enc):
    fig = layer_profile(report.layers, enc, "grad_norm", "init", "model=mlp", IDS)
    for ax in panels(fig):
        assert ax.get_yscale() == "log"
    assert panels(fig)[0].get_ylabel() == "‖∂L/∂W‖ (L2)"
    assert panels(fig)[-1].get_xlabel() == "layer index (input → output)"


def test_gradient_vs_layer_title_names_the_stage_and_the_fixed_settings(report, enc):
    settings = fixed_settings(report.summary, report.varying)
    fig = layer_profile(report.layers, enc, "grad_norm", "final", settings, IDS)
    title = fig.get_suptitle().replace("\n", " ")
    assert "at the last step" in title
    assert "model=mlp" in title and "init=default" in title and "steps=6" in title
    assert "act=" not in title and "depth=" not in title


def test_legend_names_the_swept_values(report, enc):
    fig = layer_profile(report.layers, enc, "grad_norm", "init", "", IDS)
    assert legend_labels(fig) == ["act=relu", "act=sigmoid"]


def test_a_panel_per_value_of_the_facet_key_in_numeric_order(report, enc):
    fig = layer_profile(report.layers, enc, "act_grad_norm", "init", "", IDS)
    assert [ax.get_title() for ax in panels(fig)] == ["depth=2", "depth=4", "depth=6"]


def test_a_line_per_run_in_each_panel(report, enc):
    fig = layer_profile(report.layers, enc, "grad_norm", "init", "", IDS)
    for ax, depth in zip(panels(fig), (2, 4, 6), strict=True):
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert sum(len(c.get_segments()) for c in lines) == 2
        assert all(len(s) == depth for c in lines for s in c.get_segments())


def test_panels_share_one_y_range(report, enc):
    fig = layer_profile(report.layers, enc, "grad_norm", "init", "", IDS)
    assert len({ax.get_ylim() for ax in panels(fig)}) == 1


def test_update_ratio_is_plotted_on_a_log_axis(report, enc):
    fig = layer_profile(report.layers, enc, "update_ratio", "mean", "", IDS)
    assert all(ax.get_yscale() == "log" for ax in panels(fig))
    assert "learning speed" in fig.get_suptitle()


@pytest.mark.filterwarnings("error")
def test_zero_gradients_are_left_off_the_log_axis_and_marked_as_underflow(enc):
    layers = layer_frame({"a": [0.0, 1e-3, 1.0], "b": [1e-2, 1e-1, 1.0]})
    fig = layer_profile(layers, Encoding(color="act"), "grad_norm", "init", "", IDS)
    segments = [s for c in fig.axes[0].collections if isinstance(c, LineCollection)
                for s in c.get_segments()]  # fmt: skip
    assert all((s[:, 1] > 0).all() for s in segments)
    assert "exactly 0 (underflow in the model)" in legend_labels(fig)


@pytest.mark.filterwarnings("error")
def test_a_metric_that_was_not_recorded_gives_a_no_data_panel(enc):
    layers = layer_frame({"a": [np.nan, np.nan]})
    fig = layer_profile(layers, Encoding(), "grad_norm", "init", "", IDS)
    FigureCanvasAgg(fig).draw()
    assert [t.get_text() for t in fig.axes[0].texts] == ["no data"]


def test_loss_is_on_a_log_axis_and_accuracy_on_a_linear_one():
    frame = pd.DataFrame(
        {"run": "a", "act": "relu", "step": range(4), "loss": [2.3, 1.0, 0.1, 0.01],
         "accuracy": [0.1, 0.5, 0.8, 0.9]}
    )  # fmt: skip
    loss = curves(frame, Encoding(color="act"), "loss", "", IDS)
    accuracy = curves(frame, Encoding(color="act"), "accuracy", "", IDS)
    assert loss.axes[0].get_yscale() == "log"
    assert accuracy.axes[0].get_yscale() == "linear"
    assert loss.axes[0].get_xlabel() == "training step"
    assert accuracy.axes[0].get_ylabel() == "test accuracy (fraction)"


def test_recurrent_runs_get_gradient_through_time_plots(tmp_path):
    for act in ("tanh", "relu"):
        write_run(tmp_path, f"act={act}", model="rnn", act=act, depth=2, recurrent=True)
    report = build_report(tmp_path, echo=False)
    assert {"time_grad_init.png", "time_grad_final.png"} <= {p.name for p in report.paths}


def test_gradient_through_time_has_a_log_y_axis_over_time_steps():
    time = pd.DataFrame(
        {"run": "a", "act": "tanh", "stage": "init", "t": range(5), "hidden_grad_norm": 0.1}
    )
    fig = time_profile(time, Encoding(color="act"), "init", "", IDS)
    assert fig.axes[0].get_yscale() == "log"
    assert fig.axes[0].get_xlabel() == "time step t (first → last input)"


def test_heatmap_gives_each_run_its_own_log_colour_scale_over_its_own_range():
    maps = [(f"run {i}", small_heatmap(scale=10.0**-i)) for i in range(3)]
    fig = heatmap_figure(maps, total=3, settings="model=mlp")
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 3
    assert all(isinstance(im.norm, LogNorm) for im in images)
    for (_, heat), im in zip(maps, images, strict=True):
        values = heat.values[np.isfinite(heat.values) & (heat.values > 0)]
        assert (im.norm.vmin, im.norm.vmax) == (values.min(), values.max())
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["run 0", "run 1", "run 2"]


def test_heatmap_shows_at_most_36_runs_and_says_how_many_were_left_out():
    maps = [(f"run {i}", small_heatmap()) for i in pick(50)]
    fig = heatmap_figure(maps, total=50, settings="")
    assert sum(1 for ax in fig.axes if ax.images) == 36
    assert "36 of 50 runs shown" in fig.get_suptitle()


def test_heatmap_panels_are_spread_evenly_over_the_sorted_runs():
    chosen = pick(100)
    assert len(chosen) == 36 and chosen[0] == 0 and chosen[-1] == 99
    assert max(np.diff(chosen)) - min(np.diff(chosen)) <= 1


def test_heatmap_marks_zeros_below_the_colour_scale():
    heat = small_heatmap()
    heat.values[0, :] = 0.0
    fig = heatmap_figure([("run", heat)], total=1, settings="")
    image = fig.axes[0].images[0]
    assert image.get_array()[0, 0] < image.norm.vmin
    assert "black: exactly 0 (underflow)" in fig.get_suptitle()


def test_the_overlay_seam_is_called_once_per_panel_with_that_panels_rows(report, enc):
    calls = []
    layer_profile(
        report.layers,
        enc,
        "grad_norm",
        "init",
        "",
        IDS,
        overlay=lambda ax, rows: calls.append(rows),
    )
    assert [sorted(rows["depth"].unique()) for rows in calls] == [[2], [4], [6]]
    assert all(set(rows["act"]) == {"relu", "sigmoid"} for rows in calls)


@pytest.mark.parametrize("side", [2, 4, 6])
def test_no_text_overlaps_or_sticks_out_in_a_grid_of_panels(side):
    keys = {
        "act": ["relu", "tanh"],
        "depth": list(range(side)),
        "init": [f"i{k}" for k in range(side)],
    }
    rows = [dict(zip(keys, values, strict=True)) for values in itertools.product(*keys.values())]
    layers = pd.concat(
        [layer_frame({f"r{i}": [1e-8, 1e-4, 1.0]}).assign(**row) for i, row in enumerate(rows)]
    )
    enc = Encoding(color="act", col="depth", row="init")
    fig = layer_profile(layers, enc, "grad_norm", "init", "model=mlp, " * 8, IDS)
    assert text_problems(fig) == []


def test_no_text_overlaps_or_sticks_out_on_a_log_axis_within_one_decade():
    frame = pd.DataFrame(
        {"run": np.repeat(["a", "b"], 3), "act": np.repeat(["relu", "tanh"], 3),
         "depth": [2, 2, 2, 8, 8, 8], "step": [0, 1, 2] * 2, "loss": [2.35, 2.3, 2.15] * 2}
    )  # fmt: skip
    fig = curves(frame, Encoding(color="act", col="depth"), "loss", "", IDS)
    assert text_problems(fig) == []


def test_figure_size_grows_with_the_number_of_panels(report):
    small = layer_profile(report.layers, Encoding(color="act"), "grad_norm", "init", "", IDS)
    wide = layer_profile(report.layers, Encoding(col="depth"), "grad_norm", "init", "", IDS)
    assert wide.get_figwidth() > small.get_figwidth()


def text_problems(fig) -> list[str]:
    """Drawn, non-empty texts that overlap another one or stick out of the figure."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    texts = list(fig.texts) + [t for legend in fig.legends for t in legend.get_texts()]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for locations, get_ticks in (
                (axis.get_majorticklocs(), axis.get_major_ticks),
                (axis.get_minorticklocs(), axis.get_minor_ticks),
            ):
                ticks = zip(locations, get_ticks(len(locations)), strict=True)
                texts += [tick.label1 for at, tick in ticks if low <= at <= high]
    boxes = [
        (t.get_text(), t.get_window_extent(renderer))
        for t in texts
        if t.get_visible() and t.get_text().strip()
    ]
    page = fig.bbox
    outside = [
        f"{text!r} outside the figure"
        for text, box in boxes
        if box.x0 < page.x0 or box.y0 < page.y0 or box.x1 > page.x1 or box.y1 > page.y1
    ]
    overlaps = [
        f"{a!r} overlaps {b!r}"
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
        if box_a.overlaps(box_b)
    ]
    return outside + overlaps


def layer_frame(runs: dict[str, list[float]]) -> pd.DataFrame:
    """layers.csv rows: one run per key, grad_norm (and the rest) at init per layer."""
    return pd.DataFrame(
        [
            {"run": run, "act": run, "layer": i, "grad_norm_init": v, "act_grad_norm_init": v}
            for run, values in runs.items()
            for i, v in enumerate(values)
        ]
    )


def small_heatmap(scale: float = 1.0) -> Heatmap:
    values = scale * 10.0 ** -np.arange(4.0)[:, None] * np.ones((4, 5))
    return Heatmap(steps=np.arange(5), layers=np.arange(4), values=values)


# -- legibility whatever the range ----------------------------------------------------------------


def test_panels_spanning_many_decades_get_their_own_y_range():
    deep = layer_frame({"deep": list(10.0 ** -np.arange(20.0))[::-1]}).assign(depth=20)
    shallow = layer_frame({"shallow": [0.1, 0.3, 1.0]}).assign(depth=2)
    fig = layer_profile(pd.concat([deep, shallow]), Encoding(col="depth"), "grad_norm", "init",
                        "", IDS)  # fmt: skip
    low_shallow, low_deep = (ax.get_ylim()[0] for ax in panels(fig))  # depth 2, then 20
    assert low_deep < 1e-18 and low_shallow > 0.05
    assert "own y range" in fig.get_suptitle()


def test_panels_within_a_few_decades_share_one_y_range():
    runs = [layer_frame({name: values}).assign(depth=d)
            for name, values, d in (("a", [1e-3, 1.0], 2), ("b", [0.1, 1.0], 4))]  # fmt: skip
    fig = layer_profile(pd.concat(runs), Encoding(col="depth"), "grad_norm", "init", "", IDS)
    assert len({ax.get_ylim() for ax in panels(fig)}) == 1


def test_legend_entries_carry_a_dot_when_the_lines_mark_their_points():
    fig = layer_profile(layer_frame({"a": [0.1, 1.0]}), Encoding(color="act"), "grad_norm",
                        "init", "", IDS)  # fmt: skip
    entry = fig.legends[0].legend_handles[0]
    assert entry.get_marker() == "o"


def test_update_ratio_legend_says_a_zero_is_an_update_too_small_for_a_float32_weight():
    layers = layer_frame({"a": [0.0, 1e-3]}).rename(columns={"grad_norm_init": "update_ratio_mean"})
    fig = layer_profile(layers, Encoding(color="act"), "update_ratio", "mean", "", IDS)
    assert "0: the update was too small to change a float32 weight" in legend_labels(fig)


def test_long_panel_titles_wrap_instead_of_running_into_the_next_panel():
    names = ["x" * 30, "y" * 30]
    layers = pd.concat(
        [layer_frame({f"r{i}": [0.1, 1.0]}).assign(init=f"{n}_{n}") for i, n in enumerate(names)]
    )
    fig = layer_profile(layers, Encoding(col="init"), "grad_norm", "init", "", IDS)
    assert all("\n" in ax.get_title() for ax in panels(fig))
    assert text_problems(fig) == []


def test_runs_of_several_seeds_are_one_mean_line_with_their_spread_as_a_band():
    runs = [
        layer_frame({f"s{seed}": [0.01 * (seed + 1), 1.0]}).assign(act="relu", seed=seed)
        for seed in range(3)
    ]
    enc = Encoding(color="act", lines=("seed",), band=("seed",))
    fig = layer_profile(pd.concat(runs), enc, "grad_norm", "init", "", IDS)
    ax = fig.axes[0]
    lines = [s for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(lines) == 1 and len(bands) == 1
    geometric_mean = 10 ** np.mean(np.log10([0.01, 0.02, 0.03]))
    assert lines[0][0, 1] == pytest.approx(geometric_mean, rel=1e-9, abs=0)
    band = bands[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.01) and band.max() == pytest.approx(1.0)


def test_a_value_keeps_its_colour_whatever_else_the_sweep_holds():
    alone = colors(pd.Series(["relu", "sigmoid"]), "act")
    mixed = colors(pd.Series(["tanh", "gelu", "relu", "elu"]), "act")
    assert alone["relu"] == mixed["relu"]
    assert len(set(mixed.values())) == 4
