"""Stable, readable file names for a sweep's directories, made from their overrides."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 120
UNSAFE = re.compile(r"[^A-Za-z0-9=,._+\-\[\]()]")


def safe_name(text: str, empty: str = "base") -> str:
    """A readable, stable file name for a set of overrides (`act=sigmoid,depth=10`)."""
    name = UNSAFE.sub("_", text) or empty
    if len(name) > MAX_NAME:  # keep it readable and unique: a prefix plus a digest of the whole
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME - 11]}-{digest}"
    return name
