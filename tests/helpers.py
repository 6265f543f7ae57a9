"""Run the real `vgx` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VGX = str(Path(sys.executable).with_name("vgx"))
TINY = ("steps=5", "width=8", "threads=1", "progress=false")


def vgx_env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore", "HYDRA_FULL_ERROR": "0"}


def run_vgx(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`vgx ARGS` in `cwd`, with captured text output."""
    return subprocess.run(
        [VGX, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=vgx_env()
    )


def start_vgx(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """`vgx ARGS` in the background, in its own process group (so a test can signal it)."""
    return subprocess.Popen(
        [VGX, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=vgx_env(),
        start_new_session=True,
    )
