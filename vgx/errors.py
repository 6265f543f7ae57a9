"""User-facing errors: raised where a bad value is first seen, printed as one line at the CLI."""

from __future__ import annotations


class VgxError(Exception):
    """A problem the user can fix (bad key, bad value, missing directory); never a bug."""


class ConfigError(VgxError):
    """An invalid config value or an invalid combination of values."""


class EnvironmentProblem(VgxError):
    """The machine, not the input: disk full, read-only, a file where a directory should be."""


def environment_message(err: OSError) -> str:
    """An OSError as the one line a user acts on: what went wrong, and where."""
    where = " → ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    reason = err.strerror or type(err).__name__
    return f"{reason}: {where}" if where else reason
