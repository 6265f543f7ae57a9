"""Overrides that would run code or write outside the sweep directory, refused unless opted in.

Hydra passes every `hydra.*` override through: `+hydra.callbacks.x._target_=builtins.open` once
truncated a file, and `hydra.sweep.subdir=../../x` wrote runs outside the sweep. A command line
copied from a colleague or a cron file should not be able to do that by accident.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from hydra.core.override_parser.types import Override

from vgx.errors import ConfigError
from vgx.validate import expand, parse_overrides

ALLOW_FLAG = "--allow-unsafe-overrides"
PATH_KEYS = ("hydra.sweep.subdir", "hydra.output_subdir")  # relative to a directory vgx chose
# Interpolations a path key may use: they resolve to a number or a name vgx made safe. Any other
# (${oc.env:X}, ${hydra.job.override_dirname}, whose values may hold "..") resolves only once the
# job starts, too late to refuse before a directory is made.
SAFE_PATH_INTERPOLATION = re.compile(r"\$\{(hydra\.job\.(num|id)|vgx_subdir:[^}]*)\}")


def _names_a_target(override: Override) -> bool:
    def holds_target(value: Any) -> bool:
        if isinstance(value, dict):
            return "_target_" in value or any(holds_target(v) for v in value.values())
        return isinstance(value, list) and any(holds_target(v) for v in value)

    key_parts = override.key_or_group.split(".")
    return "_target_" in key_parts or any(holds_target(v) for v in expand(override))


def _is_logging_factory(key: str) -> bool:
    # logging.config.dictConfig imports `class`, calls `()` and resolves ext:// names; only the
    # levels are plain settings.
    return key.startswith(("hydra.job_logging.", "hydra.hydra_logging.")) and not key.endswith(
        ".level"
    )


def _escapes(override: Override) -> bool:
    if override.key_or_group not in PATH_KEYS:
        return False
    values = [str(v) for v in expand(override)]
    unresolved = any("${" in SAFE_PATH_INTERPOLATION.sub("", v) for v in values)
    return unresolved or any(PurePath(v).is_absolute() or ".." in PurePath(v).parts for v in values)


# why an override is refused -> the test that finds it
UNSAFE: dict[str, Callable[[Override], bool]] = {
    "it names a _target_ to instantiate, which runs code": _names_a_target,
    "Hydra callbacks instantiate code": lambda o: o.key_or_group.startswith(
        ("hydra.callbacks", "hydra/callbacks")
    ),
    "environment variables set for the job can load code (LD_PRELOAD)": lambda o: (
        o.key_or_group.startswith("hydra.job.env_set")
    ),
    "a new config search path can supply configs that instantiate code": lambda o: (
        o.key_or_group.startswith("hydra.searchpath")
    ),
    "logging handlers and factories import and call code": lambda o: _is_logging_factory(
        o.key_or_group
    ),
    "it writes outside the sweep directory (use hydra.sweep.dir to choose where)": _escapes,
}


def check_safe(overrides: list[str]) -> None:
    """ConfigError naming the first override that would run code or write outside the sweep."""
    for override in parse_overrides(overrides):
        for reason, unsafe in UNSAFE.items():
            if unsafe(override):
                raise ConfigError(
                    f"refusing {override.input_line}: {reason}; pass {ALLOW_FLAG} if you mean it"
                )
