"""vgx, the vanishing-gradient explorer: per-layer gradient magnitudes for PyTorch sweeps.

Public API: `vgx.GradientProbe` (hooks for any model in any training loop),
`vgx.diagnose(model, batch, loss_fn)` and `vgx.load_sweep(DIR)` (a sweep's summary, layer and
per-step tables as pandas DataFrames, for notebooks); they load on first use so `import vgx`
stays light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["GradientProbe", "__version__", "diagnose", "load_sweep"]


def __getattr__(name: str) -> Any:
    if name == "GradientProbe":
        from vgx.probe import GradientProbe

        return GradientProbe
    if name == "diagnose":
        from vgx.diagnosis import diagnose

        return diagnose
    if name == "load_sweep":
        from vgx.runs import load_sweep

        return load_sweep
    raise AttributeError(f"module 'vgx' has no attribute {name!r}")
