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


class RunBusyError(ConfigError):
    """A run directory is locked by another live process (its ``.lock``); wait for that run, or
    skip it (the experiment runner does)."""


class PlatformError(UserError):
    """The command needs an operating system feature this platform lacks (``train`` on
    Windows); the message names the supported platforms."""


class CheckpointError(UserError):
    """A checkpoint is not a checkpoint, is unsafe to load, or belongs to another model."""


class NumericalError(UserError):
    """Training met a NaN/Inf loss or gradient and was configured to stop."""


def printable(text: object) -> str:
    """``text`` with every control character (ESC, BEL, newline, tab, DEL, C1 codes) shown as a
    Python escape (``\\x1b``, ``\\n``): a file name chosen by someone else must not move the
    cursor, ring the bell, recolour the terminal or split a one-line error in two."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in s)


def _escape(ch: str) -> str:
    code = ord(ch)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
