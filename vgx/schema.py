"""The run directory's schema version, and how readers see runs written under older versions.

A run records `schema_version` in its status.json; a run without one was written before versions
were recorded (version 1). Readers get metrics through `RunDir.read_table` (or `stored_columns`
and `upgrade`), which lift old frames here step by step, so the report, compare, diagnose, export
and status all read every run the same way. docs/run-directory.md lists what each version holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = 2
FIRST_VERSION = 1
# layers.csv's `kind` of normalisation layers: they have no weight layer's ‖∂L/∂h‖ of their own,
# so every first/last-layer ratio and slope leaves them out.
NORM_KIND = "norm"

# What each version changed in the run's own tables: table -> {old name: new name}, and the
# columns it added (NaN when an older run is read). CHANGELOG.md lists these and the report's.
RENAMED: dict[int, dict[str, dict[str, str]]] = {
    2: {
        "layers": {"dead": "zero_fraction"},  # the zero fraction, ~0.5 in a healthy ReLU layer
        # Version 1's `hidden_grad_norm` of vgx's (fused) recurrent layers held only the gradient
        # reaching the output sequence directly: version 2's `output_grad_norm`.
        "time": {"hidden_grad_norm": "output_grad_norm"},
    },
}
ADDED: dict[int, dict[str, tuple[str, ...]]] = {
    2: {
        "layers": ("dead_units",),  # units zero for every example of the batch
        "time": ("hidden_grad_norm", "cell_grad_norm"),  # ‖∂L/∂h_t‖, ‖∂L/∂c_t‖ (total, exact)
    },
}


def version_of(status_record: Mapping[str, Any]) -> int:
    """The schema version a run was written with (1 when it predates recorded versions)."""
    try:
        return int(status_record.get("schema_version", FIRST_VERSION))
    except (TypeError, ValueError):
        return FIRST_VERSION


def _later(version: int) -> list[int]:
    return sorted(v for v in set(RENAMED) | set(ADDED) if v > version)


def stored_columns(table: str, columns: Sequence[str], version: int) -> list[str]:
    """The names `columns` (today's) were stored under in a `version` run; absent ones left out."""
    missing = {c for v in _later(version) for c in ADDED.get(v, {}).get(table, ())}
    stored = []
    for column in (c for c in columns if c not in missing):
        for v in reversed(_later(version)):  # undo the newest rename first
            back = {new: old for old, new in RENAMED.get(v, {}).get(table, {}).items()}
            column = back.get(column, column)
        stored.append(column)
    return stored


def _version_1_to_2(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """1 → 2: the renames of RENAMED[2], the columns of ADDED[2] (NaN), and magnitudes that were
    float32 (version 2 stores float64); every float32 value is exact in float64. A version-1 zero
    may be a float32 underflow: it cannot be told apart."""
    renames = RENAMED[2].get(table, {})
    # a frame that already has the new name was written by newer code: nothing to rename
    frame = frame.rename(columns={a: b for a, b in renames.items() if b not in frame.columns})
    for column in ADDED[2].get(table, ()):
        if column not in frame.columns:
            frame = frame.assign(**{column: np.full(len(frame), np.nan)})
    narrow = [name for name, dtype in frame.dtypes.items() if dtype == np.float32]
    return frame.astype(dict.fromkeys(narrow, np.float64)) if narrow else frame


# version v → how a metrics frame written under v reads under v + 1
UPGRADES: dict[int, Callable[[str, pd.DataFrame], pd.DataFrame]] = {1: _version_1_to_2}


def upgrade(table: str, frame: pd.DataFrame, version: int) -> pd.DataFrame:
    """A `version` run's table as the current version writes it: today's column names, columns
    added since as NaN, float64 magnitudes."""
    for old in range(max(version, FIRST_VERSION), SCHEMA_VERSION):
        frame = UPGRADES[old](table, frame)
    return frame
