"""The sweep's manifest: every run the sweep will launch, written before the first one starts.

With it, a sweep's progress is countable from its files alone, whatever launched it: "pending"
is the manifest minus the runs that have a status.json.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vgx.errors import VgxError
from vgx.schema import SCHEMA_VERSION
from vgx.store import atomic_write_json, read_json

MANIFEST = "manifest.json"
SLURM_JOBS = ".vgx-slurm.json"  # the array's task ids, written by vgx_slurm when it submits


def write_manifest(
    sweep_dir: Path, command: list[str], jobs: list[tuple[list[str], str | None]]
) -> Path:
    """Record the sweep's command and each job's overrides and run directory name, atomically."""
    path = Path(sweep_dir) / MANIFEST
    atomic_write_json(
        path,
        {
            "schema_version": SCHEMA_VERSION,
            "written": time.time(),
            "command": list(command),
            "runs": [{"dir": name, "overrides": list(job)} for job, name in jobs],
        },
    )
    return path


def read_manifest(sweep_dir: Path) -> list[dict[str, Any]]:
    """The sweep's runs, each {"dir": name or None, "overrides": [...]}; [] when there is none.

    A torn or foreign manifest is a VgxError naming the file.
    """
    path = Path(sweep_dir) / MANIFEST
    if not path.exists():
        return []
    runs = read_json(path).get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise VgxError(f"cannot read {path}: no list of runs")
    return runs
