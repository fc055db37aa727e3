"""Run directory: lock file (live and stale), writability, versions, metrics CSV."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medspikeformer.engine.run_dir import (
    RunLock,
    collect_versions,
    ensure_writable_dir,
    write_metrics_csv,
)
from medspikeformer.errors import ConfigError


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    lock = RunLock(tmp_path).acquire()
    info = json.loads((tmp_path / ".lock").read_text())
    assert info["pid"] == os.getpid()
    with pytest.raises(ConfigError, match="already locked by this process"):
        RunLock(tmp_path).acquire()
    lock.release()
    assert not (tmp_path / ".lock").exists()
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").exists()
    assert not (tmp_path / ".lock").exists()


def test_lock_of_a_live_process_refuses(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import socket

        (tmp_path / ".lock").write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname()}))
        with pytest.raises(ConfigError, match=f"in use by process {proc.pid}"):
            RunLock(tmp_path).acquire()
        assert (tmp_path / ".lock").exists()
    finally:
        proc.kill()
        proc.wait()


def test_stale_lock_is_taken_over(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # its PID is now dead
    import socket

    (tmp_path / ".lock").write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname()}))
    with pytest.warns(UserWarning, match="stale lock"):
        lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_not_writable_output_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"file\.txt: output path exists and is not a directory"):
        ensure_writable_dir(blocker)
    with pytest.raises(ConfigError, match="output directory is not writable"):
        ensure_writable_dir(blocker / "run")


def test_versions_record_python_torch_package() -> None:
    v = collect_versions()
    assert {"python", "torch", "numpy", "medspikeformer", "git"} <= set(v)
    assert v["python"].count(".") == 2


def test_versions_need_no_monai(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run only records MONAI's version: it must neither need nor import MONAI (a GPU node
    may lack it)."""
    import importlib.metadata
    import sys

    monkeypatch.setitem(sys.modules, "monai", None)  # `import monai` now raises ImportError

    def absent(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", absent)
    assert collect_versions()["monai"] is None


def test_metrics_csv_union_of_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    write_metrics_csv(path, [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4, "val_miou": 0.7}])
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["val_miou"] == "" and rows[1]["val_miou"] == "0.7"


@pytest.mark.parametrize("name", ["metrics.csv", "summary.json"])
def test_a_full_disk_names_the_run_file_not_a_checkpoint(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from medspikeformer.engine.checkpoint import CheckpointError
    from medspikeformer.engine.run_dir import RunFileWriteError, write_json, write_metrics_csv

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    target = tmp_path / name
    with pytest.raises(RunFileWriteError) as info:
        if name == "metrics.csv":
            write_metrics_csv(target, [{"epoch": 1, "val_miou": 0.5}])
        else:
            write_json(target, {"epoch": 1})
    assert not isinstance(info.value, CheckpointError)
    assert name in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no temp file left
