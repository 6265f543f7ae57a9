"""Mean-field theory drawn next to the measurement on the gradient-vs-layer plots.

The prediction (Poole et al. 2016; Schoenholz et al. 2017; for residual and pre-activation
blocks, each block's growth from vgx.theory) is the back-propagated gradient at init, so it is
drawn on the activation-gradient panels at the first step, anchored at each run's measured output
layer: where the dashed line and the measured line part, theory and run disagree.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from vgx.runs import SWEEP
from vgx.theory import predicted_profile

NOTE = "dashed: mean-field theory"


def predicted_lines(summary: pd.DataFrame, column: str, ax: Axes, rows: pd.DataFrame) -> None:
    """Plots.Overlay: one dashed predicted line per run of the panel the theory covers."""
    ids = [c for c in (SWEEP, "run") if c in rows.columns]
    drawn = False
    for key, run_rows in rows.groupby(ids, sort=False):
        config = summary[(summary[ids] == pd.Series(key, index=ids)).all(axis=1)].iloc[0]
        profile = predicted_profile(config.to_dict())
        run_rows = run_rows.sort_values("layer")
        anchor = float(run_rows[column].iloc[-1])
        if profile is None or len(profile) != len(run_rows) or not 0 < anchor < math.inf:
            continue
        layers = run_rows["layer"].to_numpy()
        ax.plot(layers, anchor * np.power(10.0, profile), ls="--", lw=1.0, color="0.25")
        drawn = True
    if drawn:
        ax.text(0.02, 0.02, NOTE, transform=ax.transAxes, fontsize=7, color="0.25")
