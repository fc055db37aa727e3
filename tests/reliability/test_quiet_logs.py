"""Logs that are not a terminal get no progress bars (CI logs, nohup, pipes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.helpers import make_checkpoint
from medspikeformer.cli import main
from medspikeformer.runtime import progress_enabled

BAR_MARKS = ("it/s", "|", "%")


def _no_bar(err: str) -> None:
    noisy = [ln for ln in err.splitlines() if any(m in ln for m in BAR_MARKS)]
    assert not noisy, noisy


def test_progress_enabled_needs_a_terminal(monkeypatch) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert progress_enabled(True) is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_enabled(True) is True and progress_enabled(False) is False


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
            root / "images" / f"a{i}.png"
        )
        mask = (rng.random((40, 40)) > 0.5).astype(np.uint8) * 255
        Image.fromarray(mask).save(root / "masks" / f"a{i}.png")
    return root


def test_data_check_has_no_bar_off_a_terminal(folder: Path, capsys) -> None:
    assert main(["data", "check", "folder", "--root", str(folder)]) == 0
    captured = capsys.readouterr()
    _no_bar(captured.err)
    assert "checking folder" not in captured.out + captured.err


def test_evaluate_and_predict_have_no_bar_off_a_terminal(tmp_path: Path, folder: Path, capsys):
    ckpt = make_checkpoint(tmp_path)
    assert main(["evaluate", str(ckpt), "--out", str(tmp_path / "ev"), "--grid", "0"]) == 0
    assert main(["predict", str(ckpt), str(folder / "images"), "--out", str(tmp_path / "p")]) == 0
    _no_bar(capsys.readouterr().err)


def test_build_dataset_skip_check_has_no_bar(folder: Path, capsys) -> None:
    from medspikeformer.data import build_dataset

    build_dataset("folder", root=folder, split="all", size=32, on_error="skip", cache_dir=False)
    _no_bar(capsys.readouterr().err)
