"""Which probed steps also record the detail groups (activations, updates, time).

Gradient magnitudes are cheap (a few percent of a step, vgx/probe/norms.py) and are the mission:
they are read on every probed step. The detail groups cost more — activation statistics one
Gram matrix per layer, the update a copy of every weight, the time table the backward recurrence
of every recurrent layer — and what they show changes fastest early in training (the activation
distribution and the update size move most in the first tens of steps, then drift). So by
default they follow a log-spaced grid: steps 0–9, then 9 steps a decade (10, 20, …, 90, 100,
200, …, 900, 1000, …), plus the run's last probed step when it is known, so that every summary of
"init" and "final" reads both ends. `detail_every=N` records them on every N-th probed step
instead (1: every probed step).
"""

from __future__ import annotations

from vgx.errors import ConfigError

LOG = 0  # detail_every=LOG: the log-spaced grid


def check_detail_every(detail_every: int) -> None:
    if detail_every < 0:
        raise ConfigError(f"probe.detail_every={detail_every}: must be 0 (log grid) or more")


def on_log_grid(step: int) -> bool:
    """Steps 0–9, then the multiples of 10^k between 10^k and 10^(k+1): 9 steps a decade."""
    if step < 10:
        return True
    stride = 10 ** (len(str(step)) - 1)  # 10^⌊log10 step⌋
    return step % stride == 0


def is_detailed(step: int, detail_every: int) -> bool:
    """Whether probed step `step` is on the schedule of the detail groups (the run's last probed
    step is added by GradientProbe, which knows `every` and the last step)."""
    if detail_every == LOG:
        return on_log_grid(step)
    return step % detail_every == 0
