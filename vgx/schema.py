"""The run directory's schema version, and how readers see runs written under older versions.

A run records `schema_version` in its status.json; a run without one was written before versions
were recorded (version 1). Readers get metrics through `RunDir.read_table`, which lifts old frames
here step by step, so the report, compare, diagnose, export and status all read every run the
same way. docs/run-directory.md lists what each version holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = 2
FIRST_VERSION = 1

# Columns a version stored under a name that now means something else: {version: {table:
# {stored name: current name}}}. Version 1's `hidden_grad_norm` of vgx's (fused) recurrent
# layers held only the gradient reaching the output sequence directly, which version 2 calls
# `output_grad_norm`; ‖∂L/∂h_t‖ itself was not recorded then.
RENAMED: dict[int, dict[str, dict[str, str]]] = {
    1: {"time": {"hidden_grad_norm": "output_grad_norm"}},
}


def version_of(status_record: Mapping[str, Any]) -> int:
    """The schema version a run was written with (1 when it predates recorded versions)."""
    try:
        return int(status_record.get("schema_version", FIRST_VERSION))
    except (TypeError, ValueError):
        return FIRST_VERSION


def _version_1_to_2(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """1 → 2: the renames of RENAMED[1], and magnitudes that were float32 (version 2 stores
    float64); every float32 value is exact in float64. A version-1 zero may be a float32
    underflow: it cannot be told apart."""
    renames = RENAMED[1].get(table, {})
    # a frame that already has the new name was written by newer code: nothing to rename
    frame = frame.rename(columns={a: b for a, b in renames.items() if b not in frame.columns})
    narrow = [name for name, dtype in frame.dtypes.items() if dtype == np.float32]
    return frame.astype(dict.fromkeys(narrow, np.float64)) if narrow else frame


# version v → how a metrics frame written under v reads under v + 1
UPGRADES: dict[int, Callable[[str, pd.DataFrame], pd.DataFrame]] = {1: _version_1_to_2}


def upgrade(table: str, frame: pd.DataFrame, version: int) -> pd.DataFrame:
    """A metrics `table` frame written under `version`, as the current version writes it."""
    for old in range(max(version, FIRST_VERSION), SCHEMA_VERSION):
        frame = UPGRADES[old](table, frame)
    return frame
