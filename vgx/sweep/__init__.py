"""A sweep: its plan, names, progress log (and, this turn, manifest, status view, detach)."""
