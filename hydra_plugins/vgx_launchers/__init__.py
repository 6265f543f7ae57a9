"""Registers vgx's launchers with Hydra, which imports every module under hydra_plugins/.

`hydra/launcher=vgx_local`: vgx's own process pool (vgx/launch/), the default for parallel sweeps.
`hydra/launcher=vgx_slurm`: packs of runs as SLURM array tasks, each running its pack on that pool.
"""
