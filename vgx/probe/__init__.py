"""The gradient probe: hooks that record per-layer gradient magnitudes in any training loop.

`probe.py` holds the public GradientProbe; `discovery.py` finds the layers, `record.py` holds what
one probed step gathers, `norms.py` the exact norms, `activations.py` the activation statistics,
`tables.py` the columns and sinks, `recurrent.py` ∂L/∂h_t of fused layers, `schedule.py` when
the detail groups are recorded.
"""

from vgx.probe.probe import GradientProbe, Sink

__all__ = ["GradientProbe", "Sink"]
