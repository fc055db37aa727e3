"""The ``medspikeformer`` command line.

Every module in this package that defines ``register(subparsers)`` adds one sub-command; the
modules are discovered automatically, so each command lives in its own file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import warnings
from collections.abc import Sequence

from medspikeformer import __version__
from medspikeformer.errors import UserError, printable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medspikeformer",
        description="Spike-driven transformer for 2-D medical image segmentation.",
    )
    parser.add_argument(
        "-V", "--version", action="version", version=f"medspikeformer {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def one_line_message(exc: BaseException) -> str:
    """The message of a user error as one line.

    A ``UserError`` raised in a ``DataLoader`` worker process reaches the main process re-raised
    with the worker's traceback folded into its message ("Caught DataError in DataLoader worker
    process 0. Original Traceback ... DataError: <message>"); only the original message is kept.
    Any other line break (a file name holding one) and every control character are escaped
    (``errors.printable``): the message stays one line and cannot drive the terminal.
    """
    if "Traceback" not in str(exc):
        text = str(exc).strip()
        return printable(text) if text else type(exc).__name__
    return printable(_unwrap_worker_message(exc))


def _unwrap_worker_message(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) == 1:
        return lines[0]
    last = lines[-1]
    for cls in type(exc).__mro__:
        for prefix in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
            if last.startswith(prefix):
                return last[len(prefix) :]
    return " ".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    # The one-line warning format first: importing the sub-commands and parsing the arguments
    # may warn too, and those lines must look like every other.
    saved_format = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        result = args.func(args)
    except UserError as exc:
        print(f"error: {one_line_message(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "error: out of memory (a smaller --batch-size, image size or model needs less)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = saved_format
    return int(result or 0)


def entry() -> int:
    """The ``medspikeformer`` program (console script, ``python -m medspikeformer``): its process
    settings first — under a preloaded allocator (re-executing itself once) and with huge pages
    for large CPU tensors, both before torch loads (:mod:`medspikeformer.allocator`) — then
    :func:`main`. A bad ``MEDSPIKEFORMER_ALLOCATOR`` is one error line."""
    from medspikeformer import allocator

    argv = sys.argv[1:]
    try:
        allocator.reexec_if_wanted(argv)
    except UserError as exc:
        print(f"error: {one_line_message(exc)}", file=sys.stderr)
        return 2
    os.environ.update(allocator.cpu_settings())
    exit_on_sigterm()
    return main(argv)


SIGTERM_EXIT = 128 + signal.SIGTERM
"""Exit status of a program stopped by SIGTERM (as the shell reports a killed one)."""


def exit_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a batch scheduler's time limit) unwind like Ctrl-C does: a
    ``SystemExit`` runs every ``finally`` and cleanup on the way out — a temporary file is removed,
    a run's lock released — instead of the process vanishing mid-write. The program's own
    setting, never the library's."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(SIGTERM_EXIT)

    signal.signal(signal.SIGTERM, stop)


def _format_warning(
    message: Warning | str, category: type[Warning], *_: object, **__: object
) -> str:
    """Warnings to the user as ``warning: …`` lines (no source file and line of code)."""
    return f"warning: {printable(message)}\n"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
