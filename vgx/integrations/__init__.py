"""vgx in other tools' training loops (Lightning)."""
