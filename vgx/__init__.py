"""vgx, the vanishing-gradient explorer: per-layer gradient magnitudes for PyTorch sweeps.

Public API: `vgx.GradientProbe` (hooks for any model in any training loop) and
`vgx.diagnose(model, batch, loss_fn)`; both load on first use so `import vgx` stays light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["GradientProbe", "__version__", "diagnose"]


def __getattr__(name: str) -> Any:
    if name == "GradientProbe":
        from vgx.probe import GradientProbe

        return GradientProbe
    if name == "diagnose":
        from vgx.diagnosis import diagnose

        return diagnose
    raise AttributeError(f"module 'vgx' has no attribute {name!r}")
