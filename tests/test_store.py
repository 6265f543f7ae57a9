"""Run files as the store writes them."""

from __future__ import annotations

import os
import stat
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from vgx.store import MetricsWriter, atomic_write_text, read_metrics


def test_atomic_write_gives_the_file_the_mode_the_umask_allows(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "status.json"
    atomic_write_text(path, "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def _layer_rows(step: int, layers: int = 4) -> dict[str, np.ndarray]:
    return {
        "step": np.full(layers, step, np.int64),
        "layer": np.arange(layers, dtype=np.int32),
        "grad_norm": np.arange(layers) * 0.5 + step,
    }


def test_metrics_writer_reads_back_every_row_in_order_across_chunks(tmp_path):
    with MetricsWriter(tmp_path, chunk_rows=3000) as writer:  # chunks of 750 steps, columns grow
        for step in range(2000):
            writer.append("layers", _layer_rows(step))
    frame = read_metrics(tmp_path, "layers")
    assert len(list(tmp_path.glob("layers-*.parquet"))) == 3
    expected = pd.DataFrame([_layer_rows(s) for s in range(2000)]).explode(list(_layer_rows(0)))
    assert frame["step"].tolist() == expected["step"].tolist()
    assert frame["layer"].tolist() == expected["layer"].tolist()
    assert frame["grad_norm"].tolist() == expected["grad_norm"].tolist()
    assert frame.dtypes.astype(str).tolist() == ["int64", "int32", "float64"]


def test_metrics_writer_widens_a_string_column_instead_of_truncating(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        writer.append("hist", {"quantity": np.asarray(["grad"])})
        writer.append("hist", {"quantity": np.asarray(["act_grad", "weight"])})
    assert read_metrics(tmp_path, "hist")["quantity"].tolist() == ["grad", "act_grad", "weight"]


def test_metrics_writer_refuses_rows_with_other_columns_and_keeps_the_buffered_ones(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        writer.append("steps", {"step": [0], "loss": [1.0]})
        with pytest.raises(ValueError, match="differ"):
            writer.append("steps", {"step": [1], "lost": [0.5]})
    assert read_metrics(tmp_path, "steps").to_dict("list") == {"step": [0], "loss": [1.0]}


def test_metrics_writer_buffers_rows_at_the_cost_of_their_values(tmp_path):
    """Not per-step arrays: those cost ~6 KB a step in object overhead."""
    writer = MetricsWriter(tmp_path, chunk_rows=10**9, flush_seconds=1e9)
    rows = [_layer_rows(step) for step in range(5000)]
    values = sum(a.nbytes for r in rows for a in r.values())
    tracemalloc.start()
    try:
        for r in rows:
            writer.append("layers", r)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 2.2 * values  # columns grow by doubling


def test_metrics_writer_keeps_a_column_when_narrower_values_arrive(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        writer.append("steps", {"step": np.asarray([0], np.int64)})
        writer.append("steps", {"step": np.asarray([1], np.int32)})
    frame = read_metrics(tmp_path, "steps")
    assert frame["step"].tolist() == [0, 1] and str(frame["step"].dtype) == "int64"


def test_metrics_writer_refuses_columns_of_unequal_length_and_writes_nothing(tmp_path):
    refused = pytest.raises(ValueError, match="'steps' differ in length")
    with MetricsWriter(tmp_path) as writer, refused:
        writer.append("steps", {"step": [0, 1], "loss": [1.0]})
    assert not list(tmp_path.glob("steps-*.parquet"))
