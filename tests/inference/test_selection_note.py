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
