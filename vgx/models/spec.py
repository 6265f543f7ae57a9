"""What every model family is built from, in one object (as nanoGPT's `GPT(config)`): the data's
sizes and the run's depth, width, activation, normalisation and skip. A family's own options
(a CNN's kernel size, a transformer's heads) stay its own keyword arguments."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetSpec:
    n_features: int  # inputs per example (per time step for sequence models)
    n_outputs: int  # classes, or values per time step
    depth: int  # blocks (MLP, CNN stage, recurrent layers, encoder blocks)
    width: int  # hidden units, channels of the first stage, or the model dimension
    act: str = "relu"  # a name in vgx.models.ACTIVATIONS
    norm: str = "none"  # a name in vgx.models.NORMS
    skip: str = "none"  # a name in vgx.models.SKIPS
