"""``medspikeformer data check|show`` exit codes and outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from data_layouts import save
from PIL import Image

from medspikeformer.cli import main


def test_check_ok(kvasir_root: Path, capsys) -> None:
    assert main(["data", "check", "kvasir", "--root", str(kvasir_root)]) == 0
    out = capsys.readouterr().out
    assert "pairs found: 6" in out and "foreground fraction" in out and "no problems found" in out
    assert "6 near-binary mask(s)" in out  # JPEG masks: noisy, reported, not an error


def test_check_reports_problems(kvasir_root: Path, capsys) -> None:
    base = kvasir_root / "Kvasir-SEG"
    (base / "masks" / "cju0000abc.jpg").unlink()
    (base / "images" / "cju0001abc.jpg").write_bytes(b"")
    trunc = base / "images" / "cju0002abc.jpg"
    trunc.write_bytes(trunc.read_bytes()[:250])
    save(base / "masks" / "cju0003abc.jpg", np.zeros((9, 9), np.uint8))
    grey = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))[:, :48]
    save(base / "masks" / "cju0004abc.jpg", np.pad(grey, ((0, 0), (0, 48 - grey.shape[1]))))
    assert main(["data", "check", "kvasir", "--root", str(kvasir_root)]) == 1
    out = capsys.readouterr().out.replace("\n", " ")
    assert "cju0000abc.jpg: no mask found" in out
    assert "cju0001abc.jpg: empty file" in out
    assert "cju0002abc.jpg: unreadable image" in out
    assert "cju0003abc.jpg: mask size 9×9 differs" in out
    assert "cju0004abc.jpg: mask is not binary" in out


def test_check_json(busi_root: Path, capsys) -> None:
    import json

    assert main(["data", "check", "busi", "--root", str(busi_root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == 9 and summary["foreground_fraction"]["empty_masks"] == 3
    assert (
        main(
            [
                "data",
                "check",
                "busi",
                "--root",
                str(busi_root),
                "-o",
                "include_normal=false",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["pairs"] == 6


def test_missing_root_is_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["data", "check", "kvasir", "--root", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: ")
        and "absent: dataset root not found" in err
        and err.count("\n") == 1
    )


def test_show_writes_png(busi_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    assert (
        main(
            [
                "data",
                "show",
                "busi",
                "--root",
                str(busi_root),
                "--out",
                str(out),
                "-n",
                "3",
                "--size",
                "32",
            ]
        )
        == 0
    )
    from medspikeformer.data.check import CAPTION_HEIGHT

    grid = np.asarray(Image.open(out))
    top = CAPTION_HEIGHT
    assert grid.shape == (top + 2 * 32, 3 * 32 + 2 * 4, 3)
    # each tile opens with its sample id: dark text on a white band
    for col in range(3):
        band = grid[:top, col * 36 : col * 36 + 32]
        assert band.min() < 100 and np.median(band) == 255
    # bottom row is the overlay: green tint where the mask is
    assert (grid[top + 32 :, :, 1].astype(int) - grid[top + 32 :, :, 0]).max() > 50


def test_show_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "s.png"
    assert (
        main(
            [
                "data",
                "show",
                "synthetic",
                "--out",
                str(out),
                "-n",
                "2",
                "--size",
                "32",
                "--colors",
                "16",
            ]
        )
        == 0
    )
    assert Image.open(out).mode == "P"


def test_check_counts_only_matched_pairs(kvasir_root: Path, capsys) -> None:
    """Images whose masks are all gone are not "pairs found": they are counted apart."""
    for mask in (kvasir_root / "Kvasir-SEG" / "masks").iterdir():
        mask.unlink()
    assert main(["data", "check", "kvasir", "--root", str(kvasir_root)]) == 1
    out = capsys.readouterr().out
    assert "pairs found: 0" in out and "without their other half: 6" in out


def test_data_help_names_every_subcommand(capsys) -> None:
    import pytest

    with pytest.raises(SystemExit):
        main(["data", "--help"])
    usage = capsys.readouterr().out.splitlines()[0]
    assert "{check,show,list}" in usage
