"""``evaluate`` says in one line when it scores images that selected the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medspikeformer.cli import main
from medspikeformer.data import build_dataset

from .helpers import SIZE, make_checkpoint


def run_folder(folder: Path, validation: str) -> Path:
    """best.pt + the split.json a run under ``data.validation`` leaves."""
    make_checkpoint(folder)
    ds = build_dataset(
        "synthetic", split="train", size=SIZE, split_spec="paper", num_samples=10,
        cache_dir=False, seed=41, validation=validation,
    )  # fmt: skip
    ds.save_split(folder / "split.json")
    return folder / "best.pt"


@pytest.mark.parametrize("legacy", [False, True])
def test_evaluate_warns_when_the_test_part_selected_the_checkpoint(
    tmp_path: Path, capsys, legacy: bool
) -> None:
    ckpt = run_folder(tmp_path / "run", "test")
    if legacy:  # a split.json written before the record existed: val = test says it
        split = tmp_path / "run" / "split.json"
        saved = json.loads(split.read_text())
        del saved["validation"]
        split.write_text(json.dumps(saved))
    out = tmp_path / "ev"
    assert main(["evaluate", str(ckpt), "--out", str(out), "--no-progress", "--grid", "0"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "selected on the test part" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning:")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["info"]["selection"] == "test"


def test_evaluate_on_an_honest_split_does_not_warn(tmp_path: Path, capsys) -> None:
    ckpt = run_folder(tmp_path / "run", "train")
    out = tmp_path / "ev"
    assert main(["evaluate", str(ckpt), "--out", str(out), "--no-progress", "--grid", "0"]) == 0
    err = capsys.readouterr().err
    assert "selected on" not in err
    assert json.loads((out / "summary.json").read_text())["info"]["selection"] == "carved"
    ids = json.loads((tmp_path / "run" / "split.json").read_text())["ids"]
    assert set(ids["val"]).isdisjoint(ids["test"])
    # scoring the part it was selected on says so
    assert main(["evaluate", str(ckpt), "--split", "val", "--out", str(tmp_path / "v"),
                 "--no-progress", "--grid", "0"]) == 0  # fmt: skip
    assert "the one this checkpoint was selected on" in capsys.readouterr().err


def test_a_fold_checkpoint_scores_another_folder_without_its_folds(tmp_path: Path) -> None:
    """The training data's data.folds do not apply to a folder of 4 images (fewer cases than
    folds would be a ConfigError)."""
    import numpy as np
    import torch
    from PIL import Image

    from medspikeformer import create_model
    from medspikeformer.engine.checkpoint import build_payload, save_checkpoint

    from .helpers import TINY, calibrate

    torch.manual_seed(0)
    model = calibrate(create_model("medspikeformer", **TINY))
    train_config = {
        "data": {"dataset": "synthetic", "size": SIZE, "folds": 5, "fold": 0},
        "train": {"seed": 41, "threshold": 0.5},
    }
    ckpt = save_checkpoint(
        tmp_path / "best.pt", build_payload(model, epoch=1, metrics={}, train_config=train_config)
    )
    root = tmp_path / "mine"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"c{i}.png")
        Image.fromarray(np.full((SIZE, SIZE), 255, np.uint8)).save(root / "masks" / f"c{i}.png")
    out = tmp_path / "ev"
    argv = ["evaluate", str(ckpt), "--dataset", "folder", "--data-root", str(root), "--split",
            "test", "--out", str(out), "--no-progress", "--grid", "0"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "summary.json").read_text())["metrics"]["num_images"] == 1


def test_a_checkpoint_from_before_the_option_warns_outside_a_run(tmp_path: Path, capsys) -> None:
    """No split.json beside it: its config (no data.validation, the paper split) selected on
    the test part."""
    ckpt = make_checkpoint(tmp_path / "loose")
    out = tmp_path / "ev"
    assert main(["evaluate", str(ckpt), "--out", str(out), "--no-progress", "--grid", "0"]) == 0
    assert "warning: this checkpoint was selected on the test part" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["info"]["selection"] == "test"
