"""The real samples in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.data import build_dataset
from medspikeformer.data.datasets.monuseg import rasterise_aperio_xml

# name, sub-folder, expected pairs, plausible mean foreground fraction range
REAL = [
    ("kvasir", "kvasir-seg", 202, (0.05, 0.35)),
    ("busi", "busi", 67, (0.03, 0.30)),
    ("monuseg", "monuseg", 6, (0.08, 0.35)),
    ("covid19", "covid19-infnet", 26, (0.02, 0.35)),
]


@pytest.mark.parametrize(("name", "sub", "count", "fg_range"), REAL)
def test_real_sample(shared_data: Path, name: str, sub: str, count: int, fg_range) -> None:
    ds = build_dataset(name, shared_data / sub, split="all", size=64, cache_dir=False)
    assert len(ds) == count
    train = build_dataset(name, shared_data / sub, split="train", size=64, cache_dir=False)
    val = build_dataset(name, shared_data / sub, split="val", size=64, cache_dir=False)
    test = build_dataset(name, shared_data / sub, split="test", size=64, cache_dir=False)
    # the validation part is carved from the training cases, never the test images
    assert not {s.id for s in val.samples} & {s.id for s in test.samples}
    assert not {s.id for s in val.samples} & {s.id for s in train.samples}
    assert len(train) + len(val) + len(test) == count and len(test) == -(-count // 5)
    idx = np.linspace(0, count - 1, min(count, 8)).round().astype(int)
    fg = []
    for i in idx:
        item = ds[int(i)]
        assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
        assert item["mask"].shape == (1, 64, 64) and item["mask"].dtype == torch.float32
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        fg.append(item["mask"].mean().item())
    assert fg_range[0] <= float(np.mean(fg)) <= fg_range[1]
    assert min(fg) > 0  # every sampled pair here has a lesion / nuclei / infection


def test_real_official_splits(shared_data: Path) -> None:
    m = build_dataset(
        "monuseg", shared_data / "monuseg", split="test", split_spec="official", cache_dir=False
    )
    assert len(m) == 4
    c, v = (
        build_dataset(
            "covid19",
            shared_data / "covid19-infnet",
            split=part,
            split_spec="official",
            cache_dir=False,
        )
        for part in ("train", "val")
    )
    # 11 official training images, 2 of them carved as validation (no val folder of its own)
    assert len(c) + len(v) == 11 and len(v) == 2
    assert all(s.id.startswith("train/") for s in (*c.samples, *v.samples))


@pytest.mark.parametrize("stem", ["TCGA-B0-5710-01Z-00-DX1", "TCGA-CH-5767-01Z-00-DX1"])
def test_monuseg_matches_reference(shared_data: Path, stem: str) -> None:
    root = shared_data / "monuseg"
    ref = np.asarray(Image.open(root / "reference-binary-masks" / f"{stem}.png")) > 0
    ours = rasterise_aperio_xml(
        root / "MoNuSegTrainingData" / "Annotations" / f"{stem}.xml", ref.shape
    )
    iou = (ours & ref).sum() / (ours | ref).sum()
    assert iou >= 0.95, f"IoU {iou:.4f}"
