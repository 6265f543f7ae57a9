"""The probe's tables: their columns and dtypes, and where their rows go."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import pandas as pd

from vgx import histograms
from vgx.columns import Columns

# Every magnitude is stored as float64, as measured: float32 columns turned a float64 model's
# 1e-51 gradients into 0 (schema version 2; vgx/schema.py reads version 1's float32 columns).
_I32, _I64, _F64 = np.int32, np.int64, np.float64
SCHEMAS: dict[str, dict[str, type]] = {
    "layers": {
        "step": _I64,
        "layer": _I32,
        **dict.fromkeys(("grad_norm", "grad_rms", "act_grad_norm", "weight_norm"), _F64),
        **dict.fromkeys(("update_ratio", "act_mean", "act_std", "saturated"), _F64),
        **dict.fromkeys(("zero_fraction", "dead_units"), _F64),
        "nonfinite": _I64,
    },
    "steps": {"step": _I64, "loss": _F64, "grad_total_norm": _F64, "nonfinite": _I64},
    "time": {
        "step": _I64,
        "layer": _I32,
        "t": _I32,
        **dict.fromkeys(("hidden_grad_norm", "cell_grad_norm", "output_grad_norm"), _F64),
    },
    "hist": histograms.SCHEMA,
}
LAYER_METRICS = tuple(name for name in SCHEMAS["layers"] if name not in ("step", "layer"))


class Sink(Protocol):
    """Where rows go, e.g. vgx.store.MetricsWriter."""

    def append(self, table: str, columns: Mapping[str, np.ndarray]) -> None: ...


class MemorySink:
    """The default sink: keeps the rows for `GradientProbe.frames()`."""

    def __init__(self) -> None:
        self._tables: dict[str, Columns] = {}

    def append(self, table: str, columns: Mapping[str, np.ndarray]) -> None:
        rows = self._tables.get(table) or Columns(table, columns, 256)
        rows.add(columns)
        self._tables[table] = rows

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            table: pd.DataFrame({k: v.copy() for k, v in self._tables[table].arrays().items()})
            if table in self._tables
            else empty_frame(table)
            for table in SCHEMAS
        }


def typed(table: str, columns: Mapping[str, Any], rows: int) -> dict[str, np.ndarray]:
    """Columns with the schema's dtypes; scalars are repeated to `rows`."""
    return {
        name: np.full(rows, value, dtype) if np.ndim(value) == 0 else np.asarray(value, dtype)
        for name, dtype in SCHEMAS[table].items()
        for value in (columns[name],)
    }


def empty_frame(table: str) -> pd.DataFrame:
    return pd.DataFrame({name: np.empty(0, dtype) for name, dtype in SCHEMAS[table].items()})
