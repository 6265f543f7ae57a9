"""Processes seen from /proc (vgx's own functions), so that tests can find a sweep's workers and
check them by pid, and wait for what a process writes."""

from __future__ import annotations

import time
from collections.abc import Callable

from vgx.launch.processes import alive, children, descendants

__all__ = ["alive", "children", "descendants", "wait_for"]


def wait_for(condition: Callable[[], bool], timeout: float = 120.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(every)
