"""GradientProbeCallback: vgx's probe in a user's own Lightning training, as a vgx run directory.

What a step means: one optimizer step (`trainer.global_step`). With gradient accumulation the
probe reads the accumulated gradient once, just before the optimizer step; the activation
statistics and output gradients pool every micro-batch of that step, and `loss` is the mean of the
micro-batch losses (Lightning divides each by `accumulate_grad_batches` before backward).

When it reads: `on_before_optimizer_step`, which Lightning calls after the closure (forward and
backward) and after `GradScaler.unscale_` under `precision="16-mixed"`, and before gradient
clipping: the weight gradients are the true, unclipped ones. Output gradients are seen during
backward, on the scaled loss, so the scaler's factor is passed to the probe as `loss_scale`.

Under DDP the hook runs after the all-reduce: rank 0 records the averaged gradient of all ranks
(what the optimizer uses) and the activation statistics of its own batch shard; only rank 0 hooks
the model and writes.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from vgx.environment import environment
from vgx.loggers import Tee
from vgx.probe import GradientProbe, Sink
from vgx.status import DONE, FAILED, INTERRUPTED, RUNNING
from vgx.store import MetricsWriter, RunDir, atomic_write_json, atomic_write_text
from vgx.train import Outcome, summarise

LOGGED_METRICS = ("grad_norm", "act_grad_norm")  # per layer, to the trainer's logger


class TrainerLoggerSink:
    """Sends each probed step's per-layer norms to the trainer's logger, named by layer.

    `names()` gives the layer names in forward order; it is asked when the first rows arrive,
    after the probe has seen a forward pass.
    """

    def __init__(self, trainer: pl.Trainer, names: Callable[[], list[str]]) -> None:
        self.trainer, self.names = trainer, names

    def append(self, table: str, columns: Mapping[str, np.ndarray]) -> None:
        logger = self.trainer.logger
        if logger is None:
            return
        if table == "steps":
            for step, norm in zip(columns["step"], columns["grad_total_norm"], strict=True):
                logger.log_metrics({"vgx/grad_total_norm": float(norm)}, step=int(step))
        if table != "layers":
            return
        names = self.names()
        metrics: dict[int, dict[str, float]] = {}
        for i, step in enumerate(columns["step"]):
            name = names[int(columns["layer"][i])]
            row = metrics.setdefault(int(step), {})
            for metric in LOGGED_METRICS:
                row[f"vgx/{metric}/{name}"] = float(columns[metric][i])
        for step, row in metrics.items():
            logger.log_metrics(row, step=step)


class GradientProbeCallback(Callback):
    """Per-layer gradient magnitudes of a LightningModule, written as a vgx run directory.

    `run_dir`: where the run directory goes (default: `<trainer.log_dir>/vgx`); `vgx report`,
    `vgx compare` and `vgx diagnose` read it like any run of a sweep. After each validation the
    logged metrics named `eval_loss` and `eval_accuracy` (when the module logs them) become the
    run's held-out evaluations. `probe_options` are GradientProbe's keyword arguments (`every`,
    `activations`, `hist_every`, ...).
    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        log_to_logger: bool = True,
        eval_loss: str = "val_loss",
        eval_accuracy: str = "val_acc",
        **probe_options: Any,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.log_to_logger = log_to_logger
        self.eval_keys = {"loss": eval_loss, "accuracy": eval_accuracy}
        self.probe_options = probe_options
        self.run: RunDir | None = None
        self._probe: GradientProbe | None = None
        self._writer: MetricsWriter | None = None
        self._names: list[str] | None = None
        self._loss: Tensor | None = None
        self._captured = False
        self._steps_done = 0
        self._started = 0.0

    # -- Lightning's hooks --------------------------------------------------------------------

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return  # one writer: rank 0 (it sees the all-reduced gradient)
        root = Path(trainer.log_dir or trainer.default_root_dir)
        self.run = RunDir(self.run_dir or root / "vgx")
        self.run.path.mkdir(parents=True, exist_ok=True)
        self.run.clear_results()
        atomic_write_text(self.run.config, yaml.safe_dump(run_config(trainer, pl_module)))
        self.run.write_status(RUNNING)
        atomic_write_json(self.run.env_file, environment(pl_module.device))
        self._writer = MetricsWriter(self.run.metrics_dir)
        sink: Sink = self._writer
        if self.log_to_logger and trainer.logger is not None:
            sink = Tee(self._writer, TrainerLoggerSink(trainer, self._layer_names))
        self._probe = GradientProbe(pl_module, sink=sink, **self.probe_options)
        self._started = time.perf_counter()

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor
    ) -> None:
        if self._probe is None:
            return
        part = loss.detach() / _loss_scale(trainer)  # under AMP, Lightning hands the scaled loss
        self._loss = part if self._loss is None else self._loss + part

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._probe is None:
            return
        loss = self._loss if self._loss is not None else float("nan")
        self._probe.capture(trainer.global_step, loss, loss_scale=_loss_scale(trainer))
        self._loss, self._captured = None, True

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if self._probe is None or self.run is None or not self._captured:
            return  # not rank 0, or an accumulation micro-batch: the optimizer has not stepped
        self._probe.commit()
        self._captured = False
        self._steps_done = trainer.global_step
        if self._steps_done == 1:  # the probe knows the forward order once a step has run
            atomic_write_text(self.run.layers_file, self._probe.layer_table().to_csv(index=False))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._writer is None or trainer.sanity_checking:
            return
        logged = trainer.callback_metrics
        row = {col: float(logged.get(key, float("nan"))) for col, key in self.eval_keys.items()}
        if any(key in logged for key in self.eval_keys.values()):
            self._writer.append(
                "evals", {"step": [trainer.global_step], **{k: [v] for k, v in row.items()}}
            )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(DONE)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.run is None or self._probe is None:
            return
        if isinstance(exception, KeyboardInterrupt):
            self._finish(INTERRUPTED, message="interrupted")
            return
        atomic_write_text(self.run.error_file, "".join(traceback.format_exception(exception)))
        message = f"{type(exception).__name__}: {exception}".splitlines()[0]
        self._finish(FAILED, message=message)

    # -- the run directory --------------------------------------------------------------------

    def _layer_names(self) -> list[str]:
        if self._names is None and self._probe is not None:
            self._names = list(self._probe.layer_table()["name"])
        return self._names or []

    def _finish(self, status: str, **fields: Any) -> None:
        """Close the probe, write layers.csv and the summary, then the final status."""
        probe, writer, self._probe = self._probe, self._writer, None
        if probe is None or writer is None or self.run is None:
            return  # not rank 0 (on_fit_start sets all three), or finished already
        probe.close()
        writer.close()
        if self._steps_done and not self.run.layers_file.exists():
            atomic_write_text(self.run.layers_file, probe.layer_table().to_csv(index=False))
        if self.run.layers_file.exists():
            elapsed = time.perf_counter() - self._started
            outcome = Outcome(status, steps_done=self._steps_done)
            self.run.write_summary(summarise(self.run, outcome, elapsed))
        self.run.write_status(status, step=self._steps_done, **fields)


def run_config(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """config.yaml of a Lightning run: the module's hparams plus the trainer's settings."""
    hparams = {k: _plain(v) for k, v in dict(pl_module.hparams).items()}
    settings = {
        "model": type(pl_module).__name__,
        "max_steps": trainer.max_steps,
        "max_epochs": trainer.max_epochs,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
        "precision": str(trainer.precision),
        "gradient_clip_val": trainer.gradient_clip_val,
        "world_size": trainer.world_size,
        "strategy": type(trainer.strategy).__name__,
    }
    return {**settings, **hparams}


def _plain(value: Any) -> Any:
    """A YAML-safe form of one hparam (numbers, strings, lists and dicts stay; the rest as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _loss_scale(trainer: pl.Trainer) -> float:
    """The GradScaler's current factor under 16-mixed precision, else 1."""
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    return float(scaler.get_scale()) if scaler is not None else 1.0
