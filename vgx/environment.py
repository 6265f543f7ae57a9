"""What produced a run: versions and the git commit, recorded so results can be reproduced."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vgx


@cache
def git_commit() -> str | None:
    """The commit of the vgx source tree (with `-dirty` for local edits), or None outside git."""
    source = Path(vgx.__file__).resolve().parent
    try:
        described = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return described.stdout.strip() or None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions of vgx, torch, numpy and Python, the commit, the device and the thread count."""
    return {
        "vgx": vgx.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "device": str(device),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def usable_cores() -> int:
    """Cores this process may run on (a SLURM allocation or taskset, not the whole node)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads() -> int:
    """Cores per parallel job: the CLI sets VGX_PARALLEL_JOBS when it launches jobs side by side."""
    jobs = max(1, int(os.environ.get("VGX_PARALLEL_JOBS", "1")))
    return max(1, usable_cores() // jobs)
