"""vgx, the vanishing-gradient explorer: per-layer gradient magnitudes for PyTorch sweeps."""

__version__ = "0.1.0"
