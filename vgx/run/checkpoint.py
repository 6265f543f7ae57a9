"""Checkpoints: a run interrupted, preempted or requeued continues where it was, not at step 0.

Every `checkpoint_every` minutes (0: off), and when a stop signal arrives (Ctrl-C, SIGTERM: the
loop finishes its step first, vgx/interrupts.py), the training loop saves, at a step boundary,
everything the next step depends on: model, optimizer and schedule state, torch's RNG state, the
data position (steps done: the seeded batch order is replayed to it), the probe's position (its
forward order) and the wall time so far. The metrics written until then are flushed first and
their chunk files listed in the checkpoint: on resume, chunks written after it (by steps that
will run again) are removed, so the metrics hold every step exactly once.

`checkpoint.pt` is written to a temporary name and renamed: a kill leaves the old one or the new
one. It belongs to one config (`config_hash`); a run redone from step 0 removes it, and so does
a run that ended (done, diverged): it is only for continuing.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vgx.store import RunDir, chunk_files

CHECKPOINT = "checkpoint.pt"
TABLES = ("layers", "steps", "evals", "time", "hist")


def checkpoint_file(run: RunDir) -> Path:
    return run.path / CHECKPOINT


@dataclass
class Resume:
    """What a resumed run continues from: the steps done and the state to load."""

    steps_done: int
    elapsed_s: float
    state: dict[str, Any]


class Checkpointer:
    """Decides when to save (`every_min` minutes, 0: never) and saves at step boundaries."""

    def __init__(self, run: RunDir, config_hash: str, every_min: float) -> None:
        self.run, self.config_hash = run, config_hash
        self.every_s = every_min * 60.0
        self._last = time.monotonic()
        self.saved = 0  # checkpoints written by this process (for tests and logs)

    @property
    def enabled(self) -> bool:
        return self.every_s > 0

    def due(self) -> bool:
        return self.enabled and time.monotonic() - self._last >= self.every_s

    def save(self, steps_done: int, elapsed_s: float, state: dict[str, Any]) -> None:
        """Save `state` as the run after `steps_done` steps (its metrics must be flushed)."""
        chunks = {t: [p.name for p in chunk_files(self.run.metrics_dir, t)] for t in TABLES}
        payload = {
            "config_hash": self.config_hash,
            "steps_done": steps_done,
            "elapsed_s": elapsed_s,
            "chunks": chunks,
            "rng": torch.get_rng_state(),
            **state,
        }
        target = checkpoint_file(self.run)
        fd, tmp = tempfile.mkstemp(dir=self.run.path, prefix=f".{CHECKPOINT}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(payload, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._last = time.monotonic()
        self.saved += 1


def load_resume(run: RunDir, config_hash: str) -> Resume | None:
    """The checkpoint of this config, with the metrics pruned back to it; None: start afresh."""
    path = checkpoint_file(run)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a torn or foreign file (the rename makes torn ones unlikely): start over
        return None
    if state.get("config_hash") != config_hash:
        return None
    prune_metrics(run, state["chunks"])
    return Resume(int(state["steps_done"]), float(state["elapsed_s"]), state)


def prune_metrics(run: RunDir, kept: dict[str, list[str]]) -> None:
    """Remove the chunks written after the checkpoint (and half-written temporary files)."""
    for table in TABLES:
        keep = set(kept.get(table, []))
        for chunk in chunk_files(run.metrics_dir, table):
            if chunk.name not in keep:
                chunk.unlink()
    for tmp in run.metrics_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def remove_checkpoint(run: RunDir) -> None:
    checkpoint_file(run).unlink(missing_ok=True)
