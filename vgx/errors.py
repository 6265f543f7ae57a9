"""User-facing errors: raised where a bad value is first seen, printed as one line at the CLI."""


class VgxError(Exception):
    """A problem the user can fix (bad key, bad value, missing directory); never a bug."""


class ConfigError(VgxError):
    """An invalid config value or an invalid combination of values."""
