"""Two rounds of scripts/stress_overnight.py (kill, concurrent, dead worker): `make stress`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "stress_overnight.py"


@pytest.mark.slow
def test_two_rounds_of_overnight_attacks_leave_every_run_done_exactly_once():
    args = ["--rounds", "2", "--runs", "2", "--steps", "20"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "runs done exactly once: 12/12, unreadable files: 0, duplicate steps: 0"
    )
