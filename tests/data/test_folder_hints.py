"""The folder dataset tells a user which option fixes a layout it does not recognise, and the data
commands take loader options spelled as train takes them (--set data.options.KEY=VALUE)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medspikeformer.cli import main
from reliability.helpers import assert_user_error, run_main


def _layout(root: Path, image_dir: str, mask_dir: str, suffix: str = "") -> Path:
    rng = np.random.default_rng(0)
    (root / image_dir).mkdir(parents=True)
    (root / mask_dir).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
            root / image_dir / f"c{i}.png"
        )
        mask = (rng.random((24, 24)) > 0.5).astype(np.uint8) * 255
        Image.fromarray(mask).save(root / mask_dir / f"c{i}{suffix}.png")
    return root


def test_unknown_folder_names_point_to_image_dir_and_mask_dir(tmp_path: Path, capsys) -> None:
    root = _layout(tmp_path / "d", "imgs", "labels")
    line = assert_user_error(
        run_main(["train", "--dataset", "folder", "--data-root", root, "--out", tmp_path / "r"],
                 capsys),
        "imgs/", "labels/", "image_dir", "mask_dir", "--set data.options.image_dir",
    )  # fmt: skip
    assert str(root) in line


def test_mask_suffix_is_suggested(tmp_path: Path, capsys) -> None:
    root = _layout(tmp_path / "d", "images", "masks", suffix="_seg")
    assert_user_error(
        run_main(["train", "--dataset", "folder", "--data-root", root, "--out", tmp_path / "r"],
                 capsys),
        "mask_suffix=_seg", "--set data.options.mask_suffix=_seg",
    )  # fmt: skip


@pytest.mark.parametrize(
    "spelling",
    [
        ["--set", "data.options.image_dir=imgs", "--set", "data.options.mask_dir=labels"],
        ["-o", "image_dir=imgs", "-o", "mask_dir=labels"],
    ],
)
def test_data_check_takes_train_spelling(tmp_path: Path, spelling: list[str], capsys) -> None:
    root = _layout(tmp_path / "d", "imgs", "labels")
    assert main(["data", "check", "folder", "--data-root", str(root), *spelling]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_data_check_refuses_a_non_loader_key(tmp_path: Path, capsys) -> None:
    root = _layout(tmp_path / "d", "images", "masks")
    assert_user_error(
        run_main(["data", "check", "folder", "--root", root, "--set", "train.epochs=3"], capsys),
        "data.options.KEY=VALUE",
    )
