"""The run directory: lock file, writability check, versions, git commit and the metrics CSV.

Layout (see docs/training.md)::

    RUN_DIR/
      .lock            PID + host of the process writing here (removed at exit)
      config.yaml      the resolved TrainConfig
      split.json       the dataset split actually used
      versions.json    python, torch, numpy, package, platform, CUDA, git commit
      metrics.csv      one row per epoch (every loss term, val metrics, lr, time)
      best.pt          best val mIoU (student only)
      last.pt          end of the latest epoch, plus everything --resume needs
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import platform
import socket
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medspikeformer import outputs
from medspikeformer.errors import ConfigError, RunBusyError
from medspikeformer.runtime import check_train_platform

LOCK_NAME = ".lock"

__all__ = [
    "RunLock",
    "collect_versions",
    "ensure_writable_dir",
    "git_commit",
    "pid_alive",
    "write_json",
    "write_metrics_csv",
]


def ensure_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and prove it is writable; otherwise ConfigError naming it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: output path exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"{path}: output directory is not writable ({exc.strerror or exc})"
        ) from None
    return path


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 probes without sending; a
    POSIX meaning, hence :func:`~medspikeformer.runtime.check_train_platform`)."""
    check_train_platform("the run-directory lock")
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Exclusive lock on a run directory: ``RUN_DIR/.lock`` holding ``{"pid", "host"}``.

    The holder keeps the file open under ``flock(LOCK_EX)``, which the kernel releases when the
    process dies: of two processes that find a stale lock (its PID no longer runs on this host),
    exactly one takes it over (with a warning) — they once both did. A lock whose PID is alive →
    :class:`~medspikeformer.errors.RunBusyError` (a ``ConfigError``) naming the PID. Usable as a
    context manager.
    """

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        check_train_platform("the run-directory lock")
        import fcntl

        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ConfigError(
                    f"{self.path.parent}: cannot create lock file ({exc.strerror or exc})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                owner = self._read_owner()
                if owner.get("pid") == os.getpid():
                    raise ConfigError(
                        f"{self.path.parent}: run directory is already locked by this process"
                    ) from None
                raise self._in_use(owner, taking_over=True) from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # released (unlinked) between our open and our flock: again
                os.close(fd)
                continue
            owner = self._read_owner()
            pid, host = owner.get("pid"), owner.get("host")
            if isinstance(pid, int) and pid != os.getpid():
                if host in (None, socket.gethostname()) and pid_alive(pid):
                    os.close(fd)
                    raise self._in_use(owner)
                warnings.warn(
                    f"{self.path}: removing stale lock of process {pid} (no longer running)",
                    stacklevel=2,
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, info, 0)
            self._fd, self.held = fd, True
            return self
        raise ConfigError(f"{self.path}: could not take the run-directory lock")

    def _in_use(self, owner: dict[str, Any], *, taking_over: bool = False) -> RunBusyError:
        pid, host = owner.get("pid", "?"), owner.get("host")
        if taking_over and isinstance(pid, int) and not pid_alive(pid):
            return RunBusyError(
                f"{self.path.parent}: another process is taking over the stale lock of process "
                f"{pid} (lock file {self.path}); wait for it"
            )
        return RunBusyError(
            f"{self.path.parent}: run directory is in use by process {pid} on {host} "
            f"(lock file {self.path}); wait for it, or delete the lock if that run is dead"
        )

    def _read_owner(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text() or "{}")
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self.held:
            owner = self._read_owner()
            if owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)  # before the flock goes: see acquire
            self.held = False
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def git_commit(start: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout holding the package, or None when unavailable."""
    where = Path(start) if start else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def collect_versions() -> dict[str, Any]:
    """Versions of python, torch, numpy, the package (and CUDA/cuDNN where present)."""
    import numpy
    import torch

    from medspikeformer import __version__

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "medspikeformer": __version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    # Read from the installed metadata, not by importing: a run must not need (or pay the import
    # of) a package whose version it only records; None where it is not installed.
    try:
        info["monai"] = importlib.metadata.version("monai")
    except importlib.metadata.PackageNotFoundError:
        info["monai"] = None
    info["git"] = git_commit()
    return info


class RunFileWriteError(outputs.OutputError):
    """A run's record (``metrics.csv``, ``summary.json``, ``versions.json``) cannot be written: a
    full or read-only disk names that file, not a checkpoint."""


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Atomic JSON write."""
    outputs.atomic_write_bytes(
        path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode(), error=RunFileWriteError
    )


def write_metrics_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite the per-epoch metrics CSV from the full history (atomic; columns = union of keys)."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    outputs.atomic_write_bytes(path, buffer.getvalue().encode(), error=RunFileWriteError)


def run_dir_of(config: Any) -> Path:
    """Where a run of ``config`` writes: ``out``, else ``runs/<dataset>-<model>``."""
    return Path(config.out or f"runs/{config.data.dataset}-{config.model.name}")
