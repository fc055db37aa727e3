"""Writing output files safely: atomically, never through a link, never over an input.

Every file the tool writes (checkpoints, run files, split.json, predictions, ONNX, reports,
pictures) goes through this module:

* :func:`atomic_write_bytes` / :func:`atomic_path` — the bytes go to a temporary file in the
  target's folder (``.<name>.<random>.tmp``: writers that pick a format by the extension must be
  told the format), which is flushed, fsync'ed and ``os.replace``-d over the target, then the
  folder is fsync'ed. A full disk or a kill leaves the previous file (or none),
  never a truncated one; the temp file is removed on error.
* a target that is a symbolic link is refused (``os.replace`` would swap the link, a plain
  ``open`` would write through it to wherever it points);
* an ``OSError`` (full disk, read-only folder, permission) becomes one :class:`OutputError` line
  naming the file.
* :class:`OutputNames` — the names one run writes: an output that would replace one of the run's
  inputs is an error, two outputs of one run that would share a name get a ``-2``, ``-3`` …
  suffix and a warning.

It imports nothing from the package but :mod:`medspikeformer.errors`, so any layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from medspikeformer.errors import ConfigError

__all__ = [
    "OutputError",
    "OutputNames",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_target",
    "fsync_dir",
]


class OutputError(ConfigError):
    """An output file cannot be written (a link, an input, a full or read-only disk)."""


def fsync_dir(directory: Path) -> None:
    """fsync a folder so that a rename inside it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def check_output_target(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, or :class:`OutputError` when it is a symbolic link or a folder."""
    path = Path(path)
    if path.is_symlink():
        raise OutputError(
            f"{path}: output path is a symbolic link (to {os.readlink(path)}); refusing to write "
            "through it — remove the link or choose another output"
        )
    if path.is_dir():
        raise OutputError(f"{path}: output path is a directory")
    return path


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def temp_name(directory: Path, prefix: str, suffix: str) -> Path:
    """A fresh name for a temporary file in ``directory`` (created by the caller with
    ``O_EXCL``). The name exists before the file does, so a writer can hold it inside its
    cleanup guard from the start: an interrupt (Ctrl-C, SIGTERM) landing just after the file is
    created still finds it and removes it, where ``mkstemp`` returns the name only after."""
    return directory / f"{prefix}{secrets.token_hex(6)}{suffix}"


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, error: type[Exception] = OutputError
) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it replaces ``path``.

    For writers that take a file name (Pillow, ONNX, matplotlib; pass the format explicitly: the
    temp name ends in ``.tmp``). On any exception the
    temp file is removed and ``path`` is left as it was; an ``OSError`` becomes ``error`` (one
    line naming ``path``).
    """
    path = check_output_target(path)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{path}: cannot write there ({_describe(exc)})") from None
    tmp = temp_name(directory, f".{path.name}.", ".tmp")
    try:
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise error(f"{path}: cannot write there ({_describe(exc)})") from None
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fchmod(fh.fileno(), 0o644)  # created 0600; outputs are shareable files
            os.fsync(fh.fileno())
        check_output_target(path)  # a link may have been placed there while we wrote
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise error(f"{path}: could not be written ({_describe(exc)})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(directory)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, error: type[Exception] = OutputError
) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    path = Path(path)
    with (
        atomic_path(path, error=error) as tmp,
        os.fdopen(os.open(tmp, os.O_WRONLY | os.O_TRUNC), "wb") as fh,
    ):
        fh.write(data)
        fh.flush()
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """UTF-8 text, atomically. Characters UTF-8 cannot hold — the surrogate escapes of a file
    name that is not UTF-8 (a sample id in a report) — are written as backslash (``\\udcXX``) escapes
    instead of failing after the work that produced the text."""
    return atomic_write_bytes(path, text.encode("utf-8", errors="backslashreplace"))


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(path))


class OutputNames:
    """The files one command writes: never an input, never twice the same name.

    ``inputs`` are the files the command reads (compared by absolute path and by inode, so a
    hard link or another spelling of an input is caught too).
    """

    def __init__(self, inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
        self._inputs: set[str] = set()
        self._inodes: set[tuple[int, int]] = set()
        for p in inputs:
            self.add_input(p)
        self._taken: set[str] = set()

    def add_input(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        self._inputs.add(_key(path))
        with contextlib.suppress(OSError):
            st = path.stat()
            self._inodes.add((st.st_dev, st.st_ino))

    def _is_input(self, path: Path) -> bool:
        if _key(path) in self._inputs:
            return True
        try:
            st = path.stat()
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self._inodes

    def check_not_input(self, path: str | os.PathLike[str], *, source: str | None = None) -> None:
        """:class:`OutputError` when writing ``path`` would replace an input (or it is a link)."""
        path = Path(path)
        if self._is_input(path):
            raise OutputError(
                f"{path}: output would overwrite an input file"
                + (f" (the result for {source})" if source else "")
                + "; choose another output folder"
            )
        check_output_target(path)

    def claim(self, path: str | os.PathLike[str], *, source: str | None = None) -> Path:
        """The path to write for ``path``: itself, or with a ``-N`` suffix if this run already
        wrote one of that name (with a warning). An input there → :class:`OutputError`."""
        return self.claim_group([Path(path)], source=source)[0]

    def claim_group(self, paths: list[Path], *, source: str | None = None) -> list[Path]:
        """Claim files that belong together (mask, probability map, overlay of one image) so that
        they share one suffix: the first free ``-N`` for all of them."""
        for p in paths:
            self.check_not_input(p, source=source)
        n = 1
        while True:
            names = [p if n == 1 else p.with_name(_with_index(p.name, n)) for p in paths]
            if not any(_key(q) in self._taken or self._is_input(q) for q in names):
                break
            n += 1
        if n > 1:
            warnings.warn(
                f"{paths[0]}: already written by this run"
                + (f"; the result for {source} goes to {names[0].name}" if source else ""),
                stacklevel=2,
            )
        for q in names:
            check_output_target(q)
            self._taken.add(_key(q))
        return names


def _split_name(name: str) -> tuple[str, str]:
    for double in (".nii.gz",):
        if name.endswith(double):
            return name[: -len(double)], double
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if dot and stem else (name, "")


def _with_index(name: str, n: int) -> str:
    stem, suffix = _split_name(name)
    return f"{stem}-{n}{suffix}"
