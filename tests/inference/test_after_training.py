"""The inference side of the end-to-end path: a real (tiny) training run, then evaluate → predict →
explain → export on its checkpoints. Slow: it trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.cli import main
from tiny_models import SMALL_MSF


def _train(out: Path, data: dict, epochs: int = 1) -> Path:
    from medspikeformer.engine import train

    config = {
        "model": {"name": "medspikeformer", **SMALL_MSF},
        "data": {"size": 32, "augment": "none", "num_workers": 0, "cache_dir": "off", **data},
        "train": {"epochs": epochs, "batch_size": 4, "seed": 41, "progress": False},
        "teacher": {"mode": "joint"},
        "out": str(out),
    }
    result = train(config, log=lambda _msg: None)
    return Path(result["run_dir"])


def _inference_round_trip(run: Path, tmp: Path, image: Path) -> None:
    best = run / "best.pt"
    ckpt = torch.load(best, weights_only=True)
    # evaluate on the validation split at the training size reproduces the trainer's
    # validation metrics (the default scores at each image's own size instead)
    assert main(["evaluate", str(best), "--split", "val", "--out", str(tmp / "ev"),
                 "--no-progress", "--grid", "2", "--resolution", "training"]) == 0  # fmt: skip
    summary = json.loads((tmp / "ev" / "summary.json").read_text())
    assert summary["info"]["split_from"] == str(run.resolve() / "split.json")
    assert summary["resolution"] == "training"
    for key in ("miou", "dsc", "acc", "spe", "sen"):
        assert summary["metrics"][key] == pytest.approx(ckpt["metrics"][f"val_{key}"], abs=1e-9)
    assert main(["evaluate", str(best), "--out", str(tmp / "test"), "--no-progress"]) == 0
    assert json.loads((tmp / "test" / "summary.json").read_text())["resolution"] == "native"
    # predict at the image's own size
    assert main(["predict", str(best), str(image), "--out", str(tmp / "pred"), "--overlay",
                 "--no-progress"]) == 0  # fmt: skip
    h, w = np.asarray(Image.open(image)).shape[:2]
    assert np.asarray(Image.open(tmp / "pred" / f"{image.stem}_mask.png")).shape == (h, w)
    # explain finds the jointly trained teacher in last.pt
    assert main(["explain", str(best), str(image), "--out", str(tmp / "heat.png")]) == 0
    assert Image.open(tmp / "heat.png").size[1] == 2 * 220 + 30
    # export
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency")
    assert main(["export", str(best), "--onnx", str(tmp / "m.onnx")]) == 0
    assert (tmp / "m.onnx").stat().st_size > 10_000


@pytest.mark.slow
def test_synthetic_train_then_inference(tmp_path):
    from medspikeformer.data import build_dataset

    run = _train(tmp_path / "run", {"dataset": "synthetic", "options": {"num_samples": 16}})
    ds = build_dataset("synthetic", split="test", size=48, num_samples=4, cache_dir=False)
    image = tmp_path / "img.png"
    Image.fromarray((ds[0]["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(image)
    _inference_round_trip(run, tmp_path, image)


@pytest.mark.slow
@pytest.mark.data
def test_kvasir_sample_train_then_inference(shared_data, tmp_path):
    root = shared_data / "kvasir-seg"
    run = _train(tmp_path / "run", {"dataset": "kvasir", "root": str(root)})
    image = sorted((root / "Kvasir-SEG" / "images").glob("*.jpg"))[0]
    _inference_round_trip(run, tmp_path, image)
