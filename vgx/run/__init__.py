"""One run's machinery beyond the training loop: its lock (and, this turn, checkpoints, verify)."""
