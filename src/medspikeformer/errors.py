"""Error types.

`UserError` and its subclasses mean "the user asked for something that cannot work" (bad file,
bad config, wrong checkpoint). The command line prints them as one line and exits with status 2,
without a traceback. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input; printed as one line by the CLI (exit status 2)."""


class DataError(UserError):
    """A dataset file or folder is missing, unreadable or malformed. The message names the file."""


class ConfigError(UserError):
    """An invalid configuration value (unknown model, negative epochs, bad size, ...)."""


class CheckpointError(UserError):
    """A checkpoint is not a checkpoint, is unsafe to load, or belongs to another model."""


class NumericalError(UserError):
    """Training met a NaN/Inf loss or gradient and was configured to stop."""
