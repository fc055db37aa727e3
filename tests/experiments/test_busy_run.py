"""A busy run directory is a typed error (``RunBusyError``) raised by the run lock, and the
experiment runner skips a busy row by that type — not by the wording of the message."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from medspikeformer.engine.run_dir import RunLock
from medspikeformer.errors import ConfigError, RunBusyError
from medspikeformer.experiments import ExperimentSpec, run_experiment

from .test_runner import _fake_runner, tiny_sets

SCORES = {"medspikeformer": [0.9, 0.8, 0.7], "qk": [0.5, 0.6, 0.4]}


def test_the_run_lock_of_a_live_process_raises_run_busy(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(f'{{"pid": {other.pid}, "host": "{socket.gethostname()}"}}')
        with pytest.raises(RunBusyError, match=f"in use by process {other.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        other.kill()
        other.wait()
    assert issubclass(RunBusyError, ConfigError)  # still one line and exit 2 on the CLI
    with pytest.warns(UserWarning, match="removing stale lock"), RunLock(tmp_path) as lock:
        assert lock.held  # the stale lock is taken over


def _busy_on(key: str, message: str, error: type[Exception]):
    """The fake row runner, raising ``error(message)`` for row ``key``."""
    real = _fake_runner(SCORES)

    def run(spec, row, k, run_dir, config):
        if row.key == key:
            raise error(message)
        return real(spec, row, k, run_dir, config)

    return run


def test_a_busy_row_is_skipped_by_the_error_type(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        "compare", "synthetic", out=tmp_path / "x", rows=["qk"], sets=tiny_sets(tmp_path / "c")
    )
    runner = _busy_on("qk", "rows/qk/seed0: held elsewhere", RunBusyError)
    result = run_experiment(spec, log=None, row_runner=runner)
    assert result.busy == ["qk/seed0"] and result.trained == ["medspikeformer/seed0"]


def test_a_config_error_that_merely_reads_like_busy_is_not_swallowed(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        "compare", "synthetic", out=tmp_path / "y", rows=["qk"], sets=tiny_sets(tmp_path / "c")
    )
    runner = _busy_on("qk", "data.root: in use by process 12 (a path name)", ConfigError)
    with pytest.raises(ConfigError, match="a path name"):
        run_experiment(spec, log=None, row_runner=runner)
