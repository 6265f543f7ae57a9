"""vgx's own launchers: a process pool the front end owns, and SLURM packing built on it."""
