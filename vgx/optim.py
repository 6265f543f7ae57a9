"""Optimizers and devices a run can choose."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from vgx.errors import ConfigError
from vgx.registry import Registry

OptimizerFactory = Callable[[Iterable[nn.Parameter], Any], torch.optim.Optimizer]

OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer", "how weights are updated")
OPTIMIZERS.add(
    "sgd",
    lambda params, c: torch.optim.SGD(
        params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
    ),
)
OPTIMIZERS.add(
    "adam", lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
)
OPTIMIZERS.add(
    "adamw", lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
)
OPTIMIZERS.add(
    "rmsprop", lambda params, c: torch.optim.RMSprop(params, lr=c.lr, weight_decay=c.weight_decay)
)


def _cuda() -> torch.device:
    if not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; valid here: auto, cpu")
    return torch.device("cuda")


DEVICES: Registry[Callable[[], torch.device]] = Registry("device", "where to train")
DEVICES.add("auto", lambda: torch.device("cuda" if torch.cuda.is_available() else "cpu"))
DEVICES.add("cpu", lambda: torch.device("cpu"))
DEVICES.add("cuda", _cuda)


def make_optimizer(params: Iterable[nn.Parameter], cfg: Any) -> torch.optim.Optimizer:
    """The optimizer a run config names, with its lr, momentum and weight decay."""
    return OPTIMIZERS[cfg.optimizer](params, cfg)


def make_schedule(optimizer: torch.optim.Optimizer, cfg: Any) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps` steps: step s uses lr·(s+1)/warmup_steps, then lr.

    The transformer's post-LN blocks need it (Xiong et al. 2020, §3.2); 0 keeps lr constant.
    """
    warmup = cfg.warmup_steps
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
    )


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; `cuda` without a GPU is a config error."""
    return DEVICES[name]()
