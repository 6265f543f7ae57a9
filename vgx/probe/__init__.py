"""The gradient probe: hooks that record per-layer gradient magnitudes in any training loop.

`probe.py` holds the public GradientProbe; `stats.py` the exact square sums and statistics.
"""

from vgx.probe.probe import GradientProbe, Sink

__all__ = ["GradientProbe", "Sink"]
