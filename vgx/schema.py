"""The run directory's schema version, and how readers see runs written under older versions.

A run records `schema_version` in its status.json; a run without one was written before versions
were recorded (version 1). Readers ask `version_of` and upgrade old frames here, so the report,
compare, diagnose, export and status all read every run the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCHEMA_VERSION = 2
FIRST_VERSION = 1


def version_of(status_record: Mapping[str, Any]) -> int:
    """The schema version a run was written with (1 when it predates recorded versions)."""
    try:
        return int(status_record.get("schema_version", FIRST_VERSION))
    except (TypeError, ValueError):
        return FIRST_VERSION
