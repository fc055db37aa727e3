"""Bad files and wrong layouts raise DataError naming the file; on_error="skip" records them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from data_layouts import save, write_busi, write_kvasir, write_monuseg

from medspikeformer.data import build_dataset
from medspikeformer.errors import DataError


def first(ds):
    return [ds[i] for i in range(len(ds))]


def test_zero_byte_image(kvasir_root: Path) -> None:
    bad = kvasir_root / "Kvasir-SEG" / "images" / "cju0002abc.jpg"
    bad.write_bytes(b"")
    with pytest.raises(DataError, match=re.escape(f"{bad}: empty file (0 bytes)")):
        build_dataset("kvasir", kvasir_root, cache_dir=False)


def test_truncated_jpeg(kvasir_root: Path) -> None:
    bad = kvasir_root / "Kvasir-SEG" / "images" / "cju0003abc.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    ds = build_dataset("kvasir", kvasir_root, split="all", cache_dir=False, size=32)
    with pytest.raises(DataError, match=re.escape(f"{bad}: unreadable image")):
        first(ds)


def test_size_mismatch(kvasir_root: Path) -> None:
    bad = kvasir_root / "Kvasir-SEG" / "masks" / "cju0001abc.jpg"
    save(bad, np.zeros((10, 10), np.uint8))
    ds = build_dataset("kvasir", kvasir_root, split="all", cache_dir=False, size=32)
    with pytest.raises(DataError, match=re.escape(f"{bad}: mask size 10×10 differs from image")):
        first(ds)


def test_missing_mask(busi_root: Path) -> None:
    gone = busi_root / "Dataset_BUSI_with_GT" / "malignant" / "malignant (2)_mask.png"
    gone.unlink()
    img = gone.with_name("malignant (2).png")
    with pytest.raises(DataError, match=re.escape(f"{img}: no mask found (expected {gone})")):
        build_dataset("busi", busi_root, cache_dir=False)


def test_missing_xml(monuseg_root: Path) -> None:
    xml = monuseg_root / "MoNuSegTestData" / "TCGA-BB-0002-01Z-00-DX1.xml"
    xml.unlink()
    with pytest.raises(DataError, match=re.escape("TCGA-BB-0002-01Z-00-DX1.tif: no mask found")):
        build_dataset("monuseg", monuseg_root, cache_dir=False)


def test_malformed_xml(tmp_path: Path) -> None:
    root = write_monuseg(tmp_path / "m")
    xml = root / "MoNuSegTestData" / "TCGA-BB-0002-01Z-00-DX1.xml"
    xml.write_text("<Annotations><Region>")
    ds = build_dataset("monuseg", root, split="all", cache_dir=False, size=16)
    with pytest.raises(DataError, match=re.escape(f"{xml}: malformed XML")):
        first(ds)


def test_empty_folder_and_wrong_layout(tmp_path: Path) -> None:
    (tmp_path / "k" / "Kvasir-SEG" / "images").mkdir(parents=True)
    (tmp_path / "k" / "Kvasir-SEG" / "masks").mkdir(parents=True)
    with pytest.raises(
        DataError, match=re.escape(f"{tmp_path / 'k' / 'Kvasir-SEG'}: no image/mask pairs found")
    ):
        build_dataset("kvasir", tmp_path / "k")
    (tmp_path / "w").mkdir()
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'w'}: not a Kvasir-SEG folder")):
        build_dataset("kvasir", tmp_path / "w")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'w'}: not a BUSI folder")):
        build_dataset("busi", tmp_path / "w")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'w'}: not a MoNuSeg folder")):
        build_dataset("monuseg", tmp_path / "w")
    with pytest.raises(
        DataError, match=re.escape(f"{tmp_path / 'w'}: not an ISIC 2018 Task 1 folder")
    ):
        build_dataset("isic2018", tmp_path / "w")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope'}: dataset root not found")):
        build_dataset("covid19", tmp_path / "nope")
    with pytest.raises(DataError, match="needs a root folder"):
        build_dataset("folder")


def test_skip_records_bad_pairs(tmp_path: Path) -> None:
    root = write_kvasir(tmp_path / "k", n=6)
    imgs = root / "Kvasir-SEG" / "images"
    (imgs / "cju0000abc.jpg").write_bytes(b"")
    (imgs / "cju0001abc.jpg").write_bytes((imgs / "cju0001abc.jpg").read_bytes()[:200])
    (root / "Kvasir-SEG" / "masks" / "cju0002abc.jpg").unlink()
    ds = build_dataset("kvasir", root, split="all", size=16, cache_dir=False, on_error="skip")
    assert [s.id for s in ds.samples] == ["cju0003abc", "cju0004abc", "cju0005abc"]
    problems = [p["problem"] for p in ds.split_info["skipped"]]
    assert len(problems) == 3
    assert any("cju0000abc.jpg: empty file" in p for p in problems)
    assert any("cju0001abc.jpg: unreadable image" in p for p in problems)
    assert any("cju0002abc.jpg: no mask found" in p for p in problems)
    assert len(first(ds)) == 3


def test_busi_extra_mask_size_mismatch(tmp_path: Path) -> None:
    root = write_busi(tmp_path / "b", per_class=1)
    bad = root / "Dataset_BUSI_with_GT" / "benign" / "benign (1)_mask_1.png"
    save(bad, np.zeros((5, 5), np.uint8))
    ds = build_dataset("busi", root, split="all", size=16, cache_dir=False)
    with pytest.raises(DataError, match=re.escape(f"{bad}: mask size 5×5 differs")):
        first(ds)
