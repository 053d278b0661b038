"""User-facing errors: the CLI prints these as one line and exits non-zero, with no traceback.

Anything a user can cause (a wrong path, a config typo, an unreadable image, a run directory that would be
overwritten) raises a subclass of `UserError`; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; its message is the whole explanation."""


class ConfigError(UserError):
    """A config file or `--set` override that does not validate."""


class DataError(UserError):
    """A dataset that cannot be read as given (missing path, empty or unknown class folder, bad manifest)."""
