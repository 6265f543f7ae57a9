"""Check keys and values before anything runs, so a typo costs one line, not a traceback.

`check_overrides` expands Hydra's sweep syntax with Hydra's own parser (commas, `range(...)`,
`choice(...)`, `glob(...)`) and checks every value a sweep would produce; `check_config` checks a
composed config the same way, from the same tables.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override, QuotedString
from hydra.errors import HydraException
from omegaconf import DictConfig

from vgx.config import (
    CONFIG_MODULE,
    DataConfig,
    ModelConfig,
    ProbeConfig,
    VgxConfig,
    flatten,
    to_dict,
)
from vgx.data import DATASETS
from vgx.errors import ConfigError
from vgx.footprint import footprint, free_memory
from vgx.loggers import LOGGERS
from vgx.models import (
    ACTIVATIONS,
    INITS,
    MODELS,
    NORM_POSITIONS,
    NORMS,
    RECURRENT_INITS,
    SKIPS,
)
from vgx.optim import DEVICES, DTYPES, OPTIMIZERS, resolve_device
from vgx.registry import Registry


def experiment_names() -> list[str]:
    """The canned experiments: one YAML file each in configs/experiment/."""
    folder = resources.files(CONFIG_MODULE) / "experiment"
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


@cache  # read once: check_value asks for every value of every key
def choices() -> dict[str, Registry[Any]]:
    """Every key whose value is a name, with its registry: what `vgx list` prints."""
    experiments: Registry[None] = Registry("experiment", "canned sweep of a classic result")
    for name in experiment_names():
        experiments.add(name, None)
    return {
        "model": MODELS,
        "data": DATASETS,
        "act": ACTIVATIONS,
        "init": INITS,
        "recurrent_init": RECURRENT_INITS,
        "norm": NORMS,
        "norm_position": NORM_POSITIONS,
        "skip": SKIPS,
        "optimizer": OPTIMIZERS,
        "device": DEVICES,
        "dtype": DTYPES,
        "logger": LOGGERS,
        "experiment": experiments,
    }


# What a key means where its name does not say it (`vgx list` prints these; README "Blocks").
KEY_NOTES: dict[str, str] = {
    "depth": "blocks: MLP, the first is the stem; CNN, blocks per stage (6·depth + 2 layers); "
    "RNN family, stacked layers",
    "skip": "none: plain; residual: act(x + F(x)), the basic block of He et al. 2016 (CVPR); "
    "preact: x + F(x), norm → act inside F (ECCV); F holds two weight layers",
    "model.stages": "cnn: each stage after the first halves the map and doubles the channels",
}

# key -> (lowest allowed value, whether the bound itself is allowed)
BOUNDS: dict[str, tuple[float, bool]] = {
    "depth": (1, True),
    "width": (1, True),
    "steps": (1, True),
    "batch_size": (1, True),
    "seq_len": (1, True),
    "heads": (1, True),
    "warmup_steps": (0, True),
    "lr": (0, False),
    "init_std": (0, False),
    "momentum": (0, True),
    "weight_decay": (0, True),
    "clip": (0, True),
    "eval_every": (0, True),
    "threads": (0, True),
    "checkpoint_every": (0, True),
    "seed": (0, True),
    "model.kernel_size": (1, True),
    "model.stages": (1, True),
    "data.n_train": (1, True),
    "data.n_test": (1, True),
    "data.n_features": (2, True),
    "data.n_classes": (2, True),
    "data.class_sep": (0, False),
    "data.n_symbols": (2, True),
    "data.copy_len": (1, True),
    "data.seed": (0, True),
    "probe.every": (1, True),
    "probe.hist_every": (0, True),
    "probe.detail_every": (0, True),
    "probe.chunk_rows": (1, True),
}


# Above this an integer key is absurd, and looping or allocating over it would hang first.
MAX_INT = 2**31 - 1
# Tighter ceilings where a value far below MAX_INT already hangs: building 10^6 blocks took 60 s
# before training started; the deepest plain networks trained are 10,000 layers (Xiao et al. 2018).
UPPER_BOUNDS = {"depth": 100_000}


def _fields(schema: type, prefix: str = "") -> dict[str, type[Any] | str]:
    return {f"{prefix}{f.name}": f.type for f in dataclasses.fields(schema)}


@cache
def known_keys() -> dict[str, Any]:
    """Every settable key with its declared type (as written in the dataclasses)."""
    keys = _fields(VgxConfig)
    for group, schema in (("model", ModelConfig), ("data", DataConfig), ("probe", ProbeConfig)):
        keys.update(_fields(schema, f"{group}."))
    return keys


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# declared field type -> (test, what a valid value is): the types Hydra would reject otherwise
TYPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (_is_number, "a number"),
    "float | None": (lambda v: v is None or _is_number(v), "a number or null"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str | int | float | bool), "a word"),
}


def check_value(key: str, value: Any) -> None:
    """Raise ConfigError naming `key=value` and what would be valid."""
    registry = choices().get(key.removesuffix(".name"))
    if registry is not None:
        if not isinstance(value, str) or value not in registry:
            raise ConfigError(registry.unknown(value))
        return
    keys = known_keys()
    if key not in keys:
        return
    declared = str(keys[key])
    if declared not in TYPE_CHECKS:  # a node of several keys, e.g. probe
        subkeys = ", ".join(k for k in keys if k.startswith(f"{key}."))
        raise ConfigError(f"'{key}' holds several keys; set one of: {subkeys}")
    valid, kind = TYPE_CHECKS[declared]
    if not valid(value):
        raise ConfigError(f"{key}={value} is not {kind}")
    if _is_number(value) and not math.isfinite(value):
        raise ConfigError(f"{key}={value} is not a finite number")
    high = UPPER_BOUNDS.get(key, MAX_INT)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > high:
        raise ConfigError(f"{key}={value} is out of range; valid: ≤ {high}")
    if key in BOUNDS and value is not None:
        low, inclusive = BOUNDS[key]
        if value < low or (value == low and not inclusive):
            relation = "≥" if inclusive else ">"
            raise ConfigError(f"{key}={value} is out of range; valid: {relation} {low}")


def expand(override: Override) -> list[Any]:
    """All values an override stands for: one, or every value of a sweep (globs over choices)."""
    value = override.value()
    if isinstance(value, Glob):
        return list(value.filter(list(choices().get(override.key_or_group, {}))))
    if override.is_sweep_override():  # a quoted element is its text: act="relu",tanh
        return [v.text if isinstance(v, QuotedString) else v for v in override.sweep_iterator()]
    return [value]


def parse_overrides(overrides: list[str]) -> list[Override]:
    """Hydra's own parse of command-line overrides; a syntax error becomes one ConfigError line."""
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"cannot parse overrides: {first}") from None


def check_overrides(overrides: list[str]) -> None:
    """Check every key and every value a (sweep) command line names, before Hydra starts."""
    parsed = parse_overrides(overrides)
    keys = known_keys()
    for override in parsed:
        key = override.key_or_group
        if override.is_hydra_override() or key.startswith("hydra"):
            continue
        if key not in keys:
            raise ConfigError(f"unknown key '{key}'; valid keys: {', '.join(sorted(keys))}")
        if override.is_delete():
            raise ConfigError(f"'~{key}' would delete a key vgx needs; set a value instead")
        values = expand(override)
        if override.is_sweep_override() and not values:
            raise ConfigError(
                f"{override.input_line} gives no values: the sweep would start 0 runs"
            )
        for value in values:
            check_value(key, value)


def expand_globs(overrides: list[str]) -> list[str]:
    """Overrides with every `KEY=glob(...)` replaced by the names it matches (`act=elu,selu`).

    Hydra expands a glob only over a config group's files; over any other registry key
    (act=glob(*elu)) it would sweep nothing. Unparsable overrides are left for Hydra to report.
    """
    expanded = []
    for text in overrides:
        try:
            (override,) = parse_overrides([text])
        except ConfigError:
            expanded.append(text)
            continue
        if isinstance(override.value(), Glob) and not override.is_hydra_override():
            names = expand(override)
            if not names:
                valid = ", ".join(choices().get(override.key_or_group, {})) or "(none)"
                raise ConfigError(f"{text} matches no value; valid: {valid}")
            text = f"{override.get_key_element()}={','.join(map(str, names))}"
        expanded.append(text)
    return expanded


def check_config(cfg: DictConfig) -> None:
    """Check a composed run config key by key, then its size against the memory free for it
    (combinations are checked when the model is built, which this check comes before)."""
    flat = flatten(to_dict(cfg))
    for key, value in flat.items():
        if key == "experiment" and not value:
            continue
        check_value(key, value)
    check_memory(cfg)


def check_memory(cfg: DictConfig) -> None:
    """ConfigError when the run cannot fit in the memory free on its device, with the numbers."""
    need = footprint(cfg)
    free = free_memory(resolve_device(cfg.device))
    if need is None or free is None or need.total_bytes <= free[0]:
        return
    size = f"model={cfg.model.name} depth={cfg.depth} width={cfg.width}"
    raise ConfigError(
        f"run too large: {size} has {need.parameters:.3g} parameters; with their gradients and "
        f"optimizer state, one batch's activations ({_size(need.activation_bytes)}) and the data "
        f"({_size(need.data_bytes)}) it needs ~{_size(need.total_bytes)}, "
        f"{_size(free[0])} is free ({free[1]})"
    )


def _size(n: int) -> str:
    """Bytes in the largest unit that keeps the number at 1 or more (1.5 GB, 340 MB)."""
    units = ("B", "KB", "MB", "GB", "TB")
    power = min(len(units) - 1, max(0, (int(n).bit_length() - 1) // 10))
    return f"{n / 2 ** (10 * power):.3g} {units[power]}"
