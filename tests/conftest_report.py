"""Synthetic run directories for the reporter tests, written through the store like real runs."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from vgx.schema import SCHEMA_VERSION
from vgx.status import DONE
from vgx.store import MetricsWriter, RunDir, atomic_write_text

LAYER_COLUMNS = ("grad_norm", "grad_rms", "act_grad_norm", "weight_norm", "update_ratio")
LAYER_COLUMNS += ("act_mean", "act_std", "saturated", "zero_fraction", "dead_units")


def base_config(**keys: Any) -> dict[str, Any]:
    """A resolved config.yaml as the training loop writes it (nested model/data/probe)."""
    config: dict[str, Any] = {
        "model": {"name": "mlp", "kernel_size": 3},
        "data": {"name": "digits", "seed": 0},
        "depth": 4,
        "width": 64,
        "act": "relu",
        "init": "default",
        "lr": 0.1,
        "steps": 6,
        "seed": 0,
        "probe": {"every": 1, "chunk_rows": 20000},
    }
    for key, value in keys.items():
        if key in ("model", "data"):
            config[key] = {**config[key], "name": value}
        else:
            config[key] = value
    return config


def grad_values(depth: int, steps: int, name: str) -> np.ndarray:
    """steps × depth weight-gradient norms: decades smaller towards the input, with noise."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    decay = 10.0 ** (np.arange(depth) - (depth - 1))  # 1e-(depth-1) at layer 0 ... 1 at the last
    growth = 1.0 + np.arange(steps)[:, None] / steps
    return (decay[None, :] * growth * rng.uniform(0.5, 1.5, (steps, depth))).astype(np.float32)


def write_run(
    root: Path,
    name: str,
    *,
    status: str = DONE,
    grad: np.ndarray | None = None,
    kinds: list[str] | None = None,
    summary: bool = True,
    recurrent: bool = False,
    chunk_rows: int = 7,
    status_fields: dict[str, Any] | None = None,
    version: int = SCHEMA_VERSION,
    **keys: Any,
) -> RunDir:
    """A run directory with config.yaml, status.json, layers.csv, metrics chunks, summary.json.

    `grad` (steps × layers) fixes the weight-gradient norms; every other metric is derived from
    it, so tests can recompute any table value from the Parquet files. `version` 1 writes the
    files as vgx did before schema versions (no schema_version, the zero fraction as `dead`).
    """
    config = base_config(**keys)
    run = RunDir(Path(root) / name)
    steps, depth = int(config["steps"]), int(config["depth"])
    grad = grad_values(depth, steps, name) if grad is None else np.asarray(grad, np.float32)
    steps, n_layers = grad.shape
    kinds = kinds or ["linear"] * n_layers
    atomic_write_text(run.config, yaml.safe_dump(config))
    run.write_status(status, config_hash="0" * 16, **(status_fields or {}))
    if version == 1:
        record = {k: v for k, v in run.read_status().items() if k != "schema_version"}
        atomic_write_text(run.status_file, json.dumps(record))
    table = pd.DataFrame(
        {
            "layer": range(n_layers),
            "name": [f"blocks.{i}.{k}" for i, k in enumerate(kinds)],
            "kind": kinds,
            "params": 64 * 64,
            "fan_in": 64,
            "fan_out": 64,
        }
    )
    atomic_write_text(run.layers_file, table.to_csv(index=False))
    with MetricsWriter(run.metrics_dir, chunk_rows=chunk_rows) as writer:
        for step in range(steps):
            g = grad[step].astype(np.float32)
            writer.append("layers", _layer_rows(step, g, version))
            loss = 2.3 * 0.7**step
            writer.append("steps", {"step": [step], "loss": [loss], "grad_total_norm": [1.0],
                                    "nonfinite": [0]})  # fmt: skip
            if step % 2 == 0 or step == steps - 1:
                accuracy = min(1.0, 0.1 + 0.15 * step)
                writer.append("evals", {"step": [step], "loss": [loss], "accuracy": [accuracy]})
            if recurrent:
                t = np.arange(5, dtype=np.int32)
                writer.append(
                    "time",
                    {
                        "step": np.full(5, step),
                        "layer": np.zeros(5, np.int32),
                        "t": t,
                        "hidden_grad_norm": (10.0 ** (t - 4.0)).astype(np.float32),
                    },
                )
    if summary:
        run.write_summary(
            {"status": status, "steps_done": steps, "wall_time_s": 2.5, "steps_per_s": steps / 2.5}
        )
    return run


def _layer_rows(step: int, grad: np.ndarray, version: int) -> dict[str, np.ndarray]:
    n = grad.size
    f32 = np.float32
    zeros = np.linspace(0.2, 0, n).astype(f32)
    tail = {"dead": zeros} if version == 1 else {"zero_fraction": zeros, "dead_units": zeros / 4}
    return {
        "step": np.full(n, step, np.int64),
        "layer": np.arange(n, dtype=np.int32),
        "grad_norm": grad,
        "grad_rms": grad / 64,
        "act_grad_norm": (grad * 3).astype(f32),
        "weight_norm": np.full(n, 8.0, f32),
        "update_ratio": (grad * 0.1 / 8.0).astype(f32),
        "act_mean": np.full(n, 0.1, f32),
        "act_std": np.full(n, 1.0, f32),
        "saturated": np.linspace(0, 0.5, n).astype(f32) * (step + 1) / 10,
        **tail,
        "nonfinite": np.zeros(n, np.int64),
    }


def tree_digest(root: Path, skip: Path | None = None) -> str:
    """A hash of every file's path, size and bytes below root (except under `skip`)."""
    digest = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        if skip is not None and path.is_relative_to(skip):
            continue
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()
