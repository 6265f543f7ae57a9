"""SIGTERM (what SLURM sends before it kills a job) and SIGHUP (a closed terminal or SSH session)
handled like Ctrl-C: a clean, resumable stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP."""


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"received signal {signal.Signals(signum).name}")


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP raise Terminated; outside, the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (joblib threads, tests)
        return
    previous = {signum: signal.signal(signum, raise_terminated) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class HeldStop:
    """A stop signal held until the training loop reaches a step boundary (`reason`, or None)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def hold(self, signum: int, frame: object) -> None:
        if self.reason is not None:  # a second signal: stop at once
            raise Terminated(self.reason)
        self.reason = f"received signal {signal.Signals(signum).name}"


@contextmanager
def stops_at_step_end() -> Iterator[HeldStop]:
    """Within the block Ctrl-C, SIGTERM and SIGHUP only set `reason`: the loop checks it after
    each step, so it can save a checkpoint of a whole step before it stops (a second signal
    stops at once). A stop still held when the block ends is raised then, as Terminated."""
    held = HeldStop()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    stops = (signal.SIGINT, *STOP_SIGNALS)
    previous = {signum: signal.signal(signum, held.hold) for signum in stops}
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held.reason is not None:
        raise Terminated(held.reason)
