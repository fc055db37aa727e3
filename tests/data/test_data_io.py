"""Image decoding and the shared normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from medspikeformer.data import read_image, read_mask, to_model_input
from medspikeformer.errors import DataError


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".jpg"])
def test_read_rgb_formats(tmp_path: Path, ext: str) -> None:
    yy, xx = np.mgrid[0:12, 0:10]
    arr = np.stack([yy * 20, xx * 25, 255 - yy * 20], -1).astype(np.uint8)  # smooth: JPEG-friendly
    p = tmp_path / f"a{ext}"
    if ext == ".tif":
        tifffile.imwrite(p, arr)
    else:
        Image.fromarray(arr).save(p, quality=100)
    out = read_image(p)
    assert out.shape == (12, 10, 3) and out.dtype == np.uint8
    if ext != ".jpg":
        np.testing.assert_array_equal(out, arr)
    else:
        assert np.abs(out.astype(int) - arr).mean() < 6


def test_read_grey_16bit_rgba_palette(tmp_path: Path) -> None:
    grey = np.arange(120, dtype=np.uint8).reshape(12, 10)
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), grey)

    deep = (np.arange(120, dtype=np.uint16) * 500).reshape(12, 10)
    Image.fromarray(deep).save(tmp_path / "d.png")
    tifffile.imwrite(tmp_path / "d.tif", deep)
    expected = np.round(deep * (255 / 65535)).astype(np.uint8)
    np.testing.assert_array_equal(read_image(tmp_path / "d.png"), expected)
    np.testing.assert_array_equal(read_image(tmp_path / "d.tif"), expected)

    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 17
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (5, 6, 3) and (out[..., 0] == 200).all()

    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (12, 10, 3)


def test_float_image_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((4, 4), np.float32))
    with pytest.raises(DataError, match=r"f\.tif: unsupported pixel type float32"):
        read_image(tmp_path / "f.tif")


def test_read_mask_0_1_and_0_255(tmp_path: Path) -> None:
    m = np.zeros((6, 6), np.uint8)
    m[2:4, 2:5] = 1
    Image.fromarray(m).save(tmp_path / "m01.png")
    Image.fromarray(m * 255).save(tmp_path / "m255.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m01.png"), m.astype(bool))
    np.testing.assert_array_equal(read_mask(tmp_path / "m255.png"), m.astype(bool))


def test_to_model_input() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [51, 102, 153]]], np.uint8)
    x = to_model_input(rgb, 3)
    assert x.shape == (3, 2, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 1, 1], torch.tensor([0.2, 0.4, 0.6]))
    y = to_model_input(rgb, 1)
    assert y.shape == (1, 2, 2)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor(round(0.299 * 255) / 255))
    grey = np.array([[0, 255], [51, 102]], np.uint8)
    g3 = to_model_input(grey, 3)
    assert g3.shape == (3, 2, 2) and torch.equal(g3[0], g3[2])
    torch.testing.assert_close(g3[0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))
    with pytest.raises(ValueError):
        to_model_input(grey.astype(np.float32), 3)


def test_dataset_items_use_to_model_input(folder_root: Path) -> None:
    """Training and inference normalise identically: item image == to_model_input(resized)."""
    from medspikeformer.data import build_dataset

    ds = build_dataset("folder", folder_root, split="all", size=32, cache_dir=False)
    img, _ = ds.load_arrays(0)
    assert torch.equal(ds[0]["image"], to_model_input(img, 3))
