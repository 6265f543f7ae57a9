"""Stable, readable file names for a sweep's directories, made from their overrides.

A name is the identity a resume finds again: it ignores execution-only keys (EXECUTION_KEYS) and
how a value was quoted (`act="relu"` names the same runs as `act=relu`).
"""

from __future__ import annotations

import hashlib
import re

from hydra.core.override_parser.types import Override

from vgx.config import EXECUTION_KEYS

MAX_NAME = 120
UNSAFE = re.compile(r"[^A-Za-z0-9=,._+\-\[\]()]")
# A quoted value or sweep element: after `=` or `,`, up to the next `,` or the end.
QUOTED = re.compile(r"""(^|[=,])(["'])(.*?)\2(?=,|$)""")


def unquote(text: str) -> str:
    """`act="relu",'tanh'` -> `act=relu,tanh`: quoting does not change what a value is."""
    return QUOTED.sub(r"\1\3", text)


def safe_name(text: str, empty: str = "base") -> str:
    """A readable, stable file name for a set of overrides (`act=sigmoid,depth=10`)."""
    text = unquote(text)
    name = UNSAFE.sub("_", text) or empty
    if len(name) > MAX_NAME:  # keep it readable and unique: a prefix plus a digest of the whole
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME - 11]}-{digest}"
    return name


def typed_text(override: Override) -> str:
    """What the user typed for `override`: OverridesParser sets it on everything it parses."""
    assert override.input_line is not None, f"{override.key_or_group} was not parsed from text"
    return override.input_line


def identity_name(overrides: list[Override], sep: str) -> str:
    """The default directory name of the command that gave `overrides` (Hydra's keys apart)."""
    named = [
        unquote(typed_text(o))
        for o in overrides
        if not o.key_or_group.startswith("hydra") and o.key_or_group not in EXECUTION_KEYS
    ]
    return safe_name(sep.join(sorted(named)), empty="default")
