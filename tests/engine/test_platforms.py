"""``train`` runs on Linux and macOS; elsewhere it stops with one line naming them, before it
creates or probes anything (on Windows ``os.kill(pid, 0)`` would end the lock's owner)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medspikeformer.cli import main
from medspikeformer.engine import train
from medspikeformer.engine.run_dir import RunLock, pid_alive
from medspikeformer.errors import PlatformError, UserError
from medspikeformer.runtime import TRAIN_PLATFORMS, check_train_platform

from .helpers import quiet, tiny_config


def _no_kill(*args: object) -> None:
    raise AssertionError("os.kill called on an unsupported platform")


def test_train_on_windows_stops_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.platform", "win32")
    monkeypatch.setattr(os, "kill", _no_kill)
    with pytest.raises(PlatformError) as info:
        train(tiny_config(tmp_path / "r"), log=quiet)
    message = str(info.value)
    assert "\n" not in message and "Linux and macOS" in message and "win32" in message
    assert isinstance(info.value, UserError) and not (tmp_path / "r").exists()
    with pytest.raises(PlatformError, match="Linux and macOS"):
        RunLock(tmp_path).acquire()
    with pytest.raises(PlatformError):
        pid_alive(12345)
    assert main(["train", "--dataset", "synthetic", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: train runs on Linux and macOS only")


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_the_supported_platforms_pass(platform: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", platform)
    check_train_platform()
    assert TRAIN_PLATFORMS[platform] in ("Linux", "macOS")
