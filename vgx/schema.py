"""The run directory's schema version, and how readers see runs written under older versions.

A run records `schema_version` in its status.json; a run without one was written before versions
were recorded (version 1). Readers ask `version_of` and upgrade old frames here, so the report,
compare, diagnose, export and status all read every run the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def upgrade(table: str, frame: pd.DataFrame, version: int) -> pd.DataFrame:
    """A metrics table written under `version` with the current column names."""
    for old in range(version, SCHEMA_VERSION):
        renames = RENAMED.get(old, {}).get(table, {})
        # a frame that already has the new name was written by newer code: nothing to rename
        frame = frame.rename(columns={a: b for a, b in renames.items() if b not in frame.columns})
    return frame
