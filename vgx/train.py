"""One run: build the model, train it with the probe attached, evaluate, write the run directory.

`execute` never lets an ordinary exception escape: every outcome (done, diverged, invalid, failed)
is recorded in the run's status so the rest of a sweep goes on. Interrupts (Ctrl-C, SIGTERM) are
recorded as `interrupted` and re-raised so the sweep stops and can be resumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
import traceback
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm

from vgx import status as states  # the status words
from vgx.config import EXECUTION_KEYS, to_dict
from vgx.data import Dataset, batches, load_dataset
from vgx.environment import default_threads, environment
from vgx.errors import ConfigError, environment_message
from vgx.interrupts import Terminated, sigterm_interrupts, stops_at_step_end
from vgx.loggers import open_sink
from vgx.models import build_model, fit_data
from vgx.optim import DTYPES, make_optimizer, make_schedule, resolve_device
from vgx.probe import GradientProbe, Sink
from vgx.run.checkpoint import Checkpointer, Resume, load_resume, remove_checkpoint
from vgx.run.lock import RunLock, describe
from vgx.run.verify import verify_run
from vgx.store import MetricsWriter, RunDir, atomic_write_json, atomic_write_text
from vgx.summary import gradient_summary
from vgx.validate import check_config

log = logging.getLogger(__name__)


def config_hash(cfg: DictConfig) -> str:
    """A digest of the resolved config that decides whether a finished run can be reused."""
    content = to_dict(cfg)
    for key in EXECUTION_KEYS:
        content.pop(key, None)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def execute(
    cfg: DictConfig,
    run_dir: Path,
    redo: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[str, str]:
    """Run `cfg` into `run_dir` unless an identical run already finished there.

    Returns the run's status and the word for the sweep's tally: the status when it ran,
    `skipped` when an identical finished run verified, `repaired` when a `done` run that did not
    verify was redone, `busy elsewhere` when another live process owns the run (then untouched).
    `on_step(done, total)` is called after every training step (the sweep's progress bar).
    """
    run = RunDir(Path(run_dir))
    lock = RunLock(run.path)
    try:
        acquired = lock.acquire()
    except OSError as err:  # disk full, read-only: nothing can be written, not even a status
        log.error("cannot start %s: %s", run.path, environment_message(err))
        return states.FAILED, states.FAILED
    if not acquired:
        log.warning("%s is busy: trained by %s", run.path, describe(lock.owner))
        return run.read_status()["status"], states.BUSY
    with lock:
        return _execute_locked(cfg, run, redo, on_step)


def _execute_locked(
    cfg: DictConfig, run: RunDir, redo: bool, on_step: Callable[[int, int], None] | None
) -> tuple[str, str]:
    digest = config_hash(cfg)
    repairing = False
    if run.exists() and not redo:
        previous = run.read_status()
        if previous["status"] in states.FINAL and previous.get("config_hash") == digest:
            problems = verify_run(run) if previous["status"] == states.DONE else []
            if not problems:
                log.info("skipping %s: already %s", run.path, previous["status"])
                return previous["status"], states.SKIPPED
            log.warning("redoing %s: %s", run.path, "; ".join(problems))
            repairing = True
    resume = None if redo or repairing else load_resume(run, digest)
    status = _train_into(cfg, run, digest, on_step, resume)
    return status, states.REPAIRED if repairing and status == states.DONE else status


def _train_into(
    cfg: DictConfig,
    run: RunDir,
    digest: str,
    on_step: Callable[[int, int], None] | None,
    resume: Resume | None = None,
) -> str:
    """Train into `run` (which this process owns), from its checkpoint or from step 0, and
    record how it ended."""
    try:
        if resume is None:
            run.clear_results()
            remove_checkpoint(run)
        atomic_write_text(run.config, OmegaConf.to_yaml(cfg, resolve=True))
        resumed = {"resumed_from": resume.steps_done} if resume else {}
        run.write_status(states.RUNNING, config_hash=digest, **resumed)
    except OSError as err:  # disk full, read-only: the run cannot even start
        _record_failure(run, digest, err)
        return states.FAILED
    try:
        with sigterm_interrupts():
            check_config(cfg)
            checkpoints = Checkpointer(run, digest, cfg.checkpoint_every)
            outcome = train(cfg, run, on_step, checkpoints, resume)
        run.write_status(outcome.status, config_hash=digest, **resumed, **outcome.status_fields())
        remove_checkpoint(run)  # only for continuing; the run has ended
    except ConfigError as err:
        run.write_status(states.INVALID, config_hash=digest, message=str(err))
        log.warning("invalid: %s", err)
        return states.INVALID
    except KeyboardInterrupt as err:
        run.write_status(states.INTERRUPTED, config_hash=digest, message=str(err) or "interrupted")
        raise
    except Exception as err:  # any bug or resource error: recorded, the sweep goes on
        _record_failure(run, digest, err)
        return states.FAILED
    return outcome.status


def _record_failure(run: RunDir, digest: str, err: BaseException) -> None:
    """Mark the run `failed` with the reason; with the disk full, at least the status line."""
    message = f"{type(err).__name__}: {err}".splitlines()[0]
    with contextlib.suppress(OSError):  # disk full: the status below still fits (store.py)
        atomic_write_text(run.error_file, traceback.format_exc())
    try:
        run.write_status(states.FAILED, config_hash=digest, message=message)
    except OSError as second:  # a new run on a full disk: there is no status file to reuse
        log.error("failed: %s; its status cannot be written: %s", message, second)
        return
    log.error("failed: %s (traceback in %s)", message, run.error_file)


@dataclass
class Outcome:
    """How training ended: the status and where a divergence was first seen."""

    status: str
    steps_done: int
    diverged_step: int | None = None
    diverged_layer: str | None = None

    def status_fields(self) -> dict[str, Any]:
        if self.status != states.DIVERGED:
            return {"step": self.steps_done}
        where = f" in {self.diverged_layer}" if self.diverged_layer else ""
        return {
            "step": self.diverged_step,
            "layer": self.diverged_layer,
            "message": f"non-finite loss or gradient at step {self.diverged_step}{where}",
        }


def check_run(cfg: DictConfig) -> None:
    """Raise ConfigError for a bad value or combination without training or writing anything.

    The model is built on the meta device: every builder check runs, no memory is allocated.
    """
    check_config(cfg)
    resolve_device(cfg.device)
    data = fit_data(cfg.model.name, load_dataset(cfg.data, cfg.seq_len))
    with torch.device("meta"):
        build_model(cfg, data.n_features, data.n_outputs, data.image_shape)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset) -> tuple[float, float]:
    """Loss and accuracy on the held-out set, in eval mode (batch norm uses running statistics)."""
    model.eval()
    output = model(data.x_test)
    loss, accuracy = data.loss(output, data.y_test), data.accuracy(output, data.y_test)
    model.train()
    return float(loss), float(accuracy)


def train(
    cfg: DictConfig,
    run: RunDir,
    on_step: Callable[[int, int], None] | None = None,
    checkpoints: Checkpointer | None = None,
    resume: Resume | None = None,
) -> Outcome:
    """Train for `cfg.steps` steps, probing gradients, and write layers, metrics and summary.

    With `resume`, the state of a checkpoint is loaded and training continues after its last
    step; `checkpoints` saves one whenever it is due (vgx/run/checkpoint.py)."""
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.threads or default_threads())
    dtype = DTYPES[cfg.dtype]
    data = fit_data(cfg.model.name, load_dataset(cfg.data, cfg.seq_len)).to(device, dtype)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.n_features, data.n_outputs, data.image_shape).to(device, dtype)
    optimizer = make_optimizer(model.parameters(), cfg)
    schedule = make_schedule(optimizer, cfg)
    order = batches(len(data.x_train), cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    eval_every = cfg.eval_every or max(1, cfg.steps // 10)
    atomic_write_json(run.env_file, environment(device))
    first, elapsed_before = 0, 0.0
    if resume is not None:
        model.load_state_dict(resume.state["model"])
        optimizer.load_state_dict(resume.state["optimizer"])
        schedule.load_state_dict(resume.state["schedule"])
        torch.set_rng_state(resume.state["rng"])
        for _ in range(resume.steps_done):  # the data position: replay the seeded order
            next(order)
        first, elapsed_before = resume.steps_done, resume.elapsed_s

    started = time.perf_counter()
    outcome = Outcome(states.DONE, steps_done=first)
    with (
        MetricsWriter(run.metrics_dir, chunk_rows=cfg.probe.chunk_rows) as writer,
        closing(open_sink(cfg.logger, run.path, writer)) as sink,
        GradientProbe(
            model,
            every=cfg.probe.every,
            weights=cfg.probe.weights,
            act_grads=cfg.probe.act_grads,
            activations=cfg.probe.activations,
            updates=cfg.probe.updates,
            time=cfg.probe.time,
            hist_every=cfg.probe.hist_every,
            detail_every=cfg.probe.detail_every,
            final_step=cfg.steps - 1,
            sink=sink,
        ) as probe,
        stops_at_step_end() as stop,
    ):
        if resume is not None:
            probe.resume(first, resume.state["probe"])
        else:
            record_eval(sink, 0, *evaluate(model, data))
        bar = tqdm(
            total=cfg.steps,
            initial=first,
            desc=run.path.name,
            disable=not cfg.progress,
            leave=False,
        )
        for step in range(first, cfg.steps):
            idx = next(order).to(device)
            loss = data.loss(model(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            probe.capture(step, loss)
            if cfg.clip > 0:  # clip after the probe read the raw gradients: explosion stays visible
                total = nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            else:
                total = probe.grad_total_norm()
            # One host sync per step: a NaN or Inf anywhere reaches the loss or the total norm.
            diverged = not bool(torch.isfinite(loss) & torch.isfinite(total))
            if diverged:
                probe.keep_step()  # the exploding signal is stored, probed step or not
            else:
                optimizer.step()
                schedule.step()
            probe.commit()
            if step == first:  # the probe knows the forward order once a step has run
                layer_table = probe.layer_table()
                sink.describe_layers(layer_table)
                if step == 0:
                    atomic_write_text(run.layers_file, layer_table.to_csv(index=False))
            if diverged:
                outcome = Outcome(states.DIVERGED, step, step, probe.locate_nonfinite())
                break
            outcome.steps_done = step + 1
            if outcome.steps_done % eval_every == 0 or outcome.steps_done == cfg.steps:
                record_eval(sink, outcome.steps_done, *evaluate(model, data))
            bar.update()
            if on_step:
                on_step(outcome.steps_done, cfg.steps)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.4g}", refresh=False)
            if checkpoints is not None and (
                (stop.reason is not None and checkpoints.enabled)
                or (checkpoints.due() and outcome.steps_done < cfg.steps)
            ):
                writer.flush()  # the metrics so far belong to the checkpoint
                checkpoints.save(
                    outcome.steps_done,
                    elapsed_before + time.perf_counter() - started,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "probe": probe.position(),
                    },
                )
            if stop.reason is not None:
                raise Terminated(stop.reason)
        bar.close()
    elapsed = elapsed_before + time.perf_counter() - started
    run.write_summary({**summarise(run, outcome, elapsed), **data.sizes()})
    return outcome


def record_eval(sink: Sink, step: int, loss: float, accuracy: float) -> None:
    sink.append(
        "evals",
        {"step": np.array([step]), "loss": np.array([loss]), "accuracy": np.array([accuracy])},
    )


def summarise(run: RunDir, outcome: Outcome, elapsed: float) -> dict[str, Any]:
    """The one-row summary: final and best metrics, speed, and the gradient ratios."""
    evals, steps = run.read_table("evals"), run.read_table("steps")
    layers = run.read_table("layers")
    layer_table = pd.read_csv(run.layers_file)
    last_eval = evals.iloc[-1] if len(evals) else None
    return {
        "status": outcome.status,
        "steps_done": outcome.steps_done,
        "train_loss_final": float(steps["loss"].iloc[-1]) if len(steps) else math.nan,
        "test_loss_final": float(last_eval["loss"]) if last_eval is not None else math.nan,
        "test_accuracy_final": float(last_eval["accuracy"]) if last_eval is not None else math.nan,
        "test_accuracy_best": float(evals["accuracy"].max()) if len(evals) else math.nan,
        "wall_time_s": elapsed,
        "steps_per_s": outcome.steps_done / elapsed if elapsed > 0 else math.nan,
        "diverged_step": outcome.diverged_step,
        "diverged_layer": outcome.diverged_layer,
        **gradient_summary(layers, layer_table, steps, run.read_table("time")),
    }
