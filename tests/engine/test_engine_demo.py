"""The demo command end to end (shrunk to seconds with overrides)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medspikeformer.cli import main
from medspikeformer.engine.config import load_config


def test_demo_recipe_is_the_default_model_with_its_teacher() -> None:
    cfg = load_config("synthetic", recipe="demo")
    assert cfg.model.name == "medspikeformer"
    assert cfg.teacher.mode == "joint"
    assert cfg.data.dataset == "synthetic"


def test_demo_writes_metrics_and_pictures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    args = [
        "demo", "--out", str(out), "--epochs", "1", "--size", "32",
        "--set", "data.options.num_samples=10", "--set", "model.base_channels=4",
        "--set", "model.num_units=2", "--set", "model.head_dim=4", "--set", "train.progress=false",
    ]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "demo test split" in printed and str(out) in printed
    summary = json.loads((out / "test" / "summary.json").read_text())
    assert 0.0 <= summary["metrics"]["miou"] <= 1.0
    assert summary["info"]["split"] == "test"
    for name in (
        "metrics.csv",
        "best.pt",
        "test/per_image.csv",
        "training_curves.png",
        "qualitative.png",
    ):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0
    # Another configuration in the same folder is refused clearly (before any training).
    assert main([*args[:4], "2", *args[5:]]) == 2
    assert "--fresh" in capsys.readouterr().err
