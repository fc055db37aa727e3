"""predict: every input format, output sizes and values, modes, the large-image guard, bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.errors import ConfigError, DataError
from medspikeformer.inference import predict as predict_mod
from medspikeformer.inference.predict import (
    Predictor,
    expand_inputs,
    predict_paths,
    probe_shape,
)
from tiny_models import SMALL_MSF

from .helpers import SIZE, PointwiseModel


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_images(folder: Path) -> dict[str, tuple[int, int]]:
    """One file per 2-D format, each a different odd size; returns name → (H, W)."""
    folder.mkdir(parents=True, exist_ok=True)
    import tifffile

    sizes = {
        "a.png": (45, 61),
        "b.jpg": (70, 33),
        "c.tif": (64, 64),
        "d.bmp": (21, 90),
        "e.tiff": (37, 50),
    }
    for i, (name, (h, w)) in enumerate(sizes.items()):
        img = _rgb(h, w, i)
        if name.endswith((".tif", ".tiff")):
            tifffile.imwrite(folder / name, img)
        elif name == "d.bmp":
            Image.fromarray(img[..., 0]).save(folder / name)  # grey BMP
        else:
            Image.fromarray(img).save(folder / name)
    return sizes


def _nifti(path: Path, shape=(40, 52, 3), affine=None, grey=False) -> np.ndarray:
    import nibabel as nib

    rng = np.random.default_rng(3)
    if grey:
        data = rng.integers(0, 256, shape).astype(np.int16)
    else:
        data = rng.normal(-300, 500, shape).astype(np.int16)
    if affine is None:
        affine = np.diag([0.7, 0.7, 5.0, 1.0])
        affine[:3, 3] = [-10.0, 20.0, 30.0]
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return affine


@pytest.fixture
def predictor(tiny_model) -> Predictor:
    return Predictor(model=tiny_model, train_size=(SIZE, SIZE), in_channels=3)


def test_every_format_gives_masks_of_the_input_size(predictor, tmp_path):
    sizes = _write_images(tmp_path / "in")
    results = predict_paths(predictor, [tmp_path / "in"], tmp_path / "out", overlay=True)
    assert len(results) == len(sizes)
    for name, (h, w) in sizes.items():
        stem = Path(name).stem
        mask = np.asarray(Image.open(tmp_path / "out" / f"{stem}_mask.png"))
        assert mask.shape == (h, w), name
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        over = Image.open(tmp_path / "out" / f"{stem}_overlay.png")
        assert over.size == (w, h) and over.mode == "RGB"


def test_mask_is_the_thresholded_prediction(pointwise, tmp_path):
    """With a pointwise model the written PNG equals the direct per-pixel prediction."""
    img = _rgb(50, 77)
    Image.fromarray(img).save(tmp_path / "x.png")
    pred = Predictor(model=pointwise, train_size=(16, 16), block=32)
    predict_paths(pred, [tmp_path / "x.png"], tmp_path / "out")
    got = np.asarray(Image.open(tmp_path / "out" / "x_mask.png"))
    from medspikeformer.data import to_model_input

    with torch.no_grad():
        probs = torch.sigmoid(pointwise.conv(to_model_input(img, 3)[None]))[0, 0].numpy()
    clear = np.abs(probs - 0.5) > 1e-5
    np.testing.assert_array_equal(got[clear], np.where(probs >= 0.5, 255, 0)[clear])
    assert 0 < (got > 0).mean() < 1  # not trivially empty or full


def test_sliding_and_resize_agree_at_the_training_size(tiny_model):
    img = _rgb(SIZE, SIZE, 5)
    sliding = Predictor(tiny_model, (SIZE, SIZE), mode="sliding").predict_array(img)
    resized = Predictor(tiny_model, (SIZE, SIZE), mode="resize").predict_array(img)
    np.testing.assert_array_equal(sliding, resized)


@pytest.mark.parametrize("mode", ["sliding", "resize"])
@pytest.mark.parametrize("shape", [(20, 27), (97, 130), (130, 97, 3)])
def test_modes_keep_the_original_size(tiny_model, mode, shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    mask = Predictor(tiny_model, (SIZE, SIZE), mode=mode).predict_array(img)
    assert mask.shape == shape[:2] and set(np.unique(mask)) <= {0, 255}


def test_resize_mode_uint8_path_matches_float_path(tiny_model):
    """Above block² pixels the probabilities are resized as 8-bit; the masks still agree."""
    img = _rgb(120, 150, 2)
    full = Predictor(tiny_model, (SIZE, SIZE), mode="resize").predict_array(img)
    small_block = Predictor(tiny_model, (SIZE, SIZE), mode="resize", block=64).predict_array(img)
    assert (full == small_block).mean() > 0.99


# A left-posterior-superior volume stored with its axes permuted: reorientation must be undone.
_LPS_PERMUTED = np.array(
    [[0.0, -0.8, 0.0, 5.0], [-0.8, 0.0, 0.0, -3.0], [0.0, 0.0, 2.5, 7.0], [0.0, 0.0, 0.0, 1.0]]
)


@pytest.mark.parametrize("affine", [None, _LPS_PERMUTED], ids=["ras", "lps-permuted"])
@pytest.mark.parametrize("grey", [False, True], ids=["hu", "grey"])
def test_nifti_slices_are_what_the_training_loader_sees(predictor, tmp_path, affine, grey):
    """Each slice is predicted on exactly the uint8 image the COVID-19 NIfTI loader gives (RAS
    reorientation, CT window or grey, radiological view); the mask volume lands on the input grid."""
    import nibabel as nib

    from medspikeformer.data import build_dataset
    from medspikeformer.data.datasets.covid19 import axial_slice

    root = tmp_path / "covid"
    vol_path = root / "COVID-19-CT-Seg_20cases" / "case1.nii.gz"
    affine = _nifti(vol_path, shape=(40, 52, 3), affine=affine, grey=grey)
    _nifti(root / "Infection_Mask" / "case1.nii.gz", shape=(40, 52, 3), affine=affine, grey=True)
    view_hw = axial_slice(np.asarray(nib.as_closest_canonical(nib.load(str(vol_path))).dataobj), 0)
    ds = build_dataset("covid19", root, split="all", size=view_hw.shape, cache_dir=False)
    assert len(ds) == 3

    written = predictor.predict_file(vol_path, tmp_path / "out", png_slices=True)
    out = nib.load(str(tmp_path / "out" / "case1_mask.nii.gz"))
    labels = np.asarray(out.dataobj)
    assert labels.shape == (40, 52, 3) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1}
    np.testing.assert_allclose(out.affine, affine)
    pngs = sorted((tmp_path / "out" / "case1_slices").glob("*.png"))
    assert len(pngs) == 3 and len(written) == 4
    labels_ras = np.asarray(nib.as_closest_canonical(out).dataobj)
    for z, png in enumerate(pngs):
        loader_image, _ = ds.load_arrays(z)
        expected = predictor.predict_array(loader_image)
        np.testing.assert_array_equal(np.asarray(Image.open(png)), expected)
        np.testing.assert_array_equal(axial_slice(labels_ras, z) * 255, expected)
    assert 0 < labels.mean() < 1 or grey  # the tiny model predicts something non-trivial


def test_nifti_plain_suffix_and_2d(predictor, tmp_path):
    import nibabel as nib

    data = np.random.default_rng(0).integers(0, 255, (33, 41), dtype=np.uint8)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "flat.nii"))
    predictor.predict_file(tmp_path / "flat.nii", tmp_path / "out")
    assert np.asarray(nib.load(str(tmp_path / "out" / "flat_mask.nii.gz")).dataobj).shape == (
        33,
        41,
    )


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width × height, with no pixel data (decoding would fail)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_large_image_refused_from_its_header_before_decoding(predictor, tmp_path):
    path = tmp_path / "huge.png"
    _png_header_only(path, 40000, 30000)
    assert probe_shape(path) == (30000, 40000)
    with pytest.raises(DataError, match=r"huge\.png.*1200 Mpixel exceeds the limit of 625"):
        predictor.predict_file(path, tmp_path / "out")
    assert not (tmp_path / "out" / "huge_mask.png").exists()


def test_max_pixels_is_configurable(tiny_model, tmp_path):
    Image.fromarray(_rgb(40, 40)).save(tmp_path / "a.png")
    strict = Predictor(tiny_model, (SIZE, SIZE), max_pixels=1000)
    with pytest.raises(DataError, match=r"a\.png: image of 40×40"):
        strict.predict_file(tmp_path / "a.png", tmp_path / "out")


def test_memory_guard(tiny_model, tmp_path, monkeypatch):
    Image.fromarray(_rgb(40, 40)).save(tmp_path / "a.png")
    monkeypatch.setattr(predict_mod, "available_memory", lambda: 10_000)
    with pytest.raises(DataError, match=r"a\.png: .*GiB of memory is available"):
        Predictor(tiny_model, (SIZE, SIZE)).predict_file(tmp_path / "a.png", tmp_path / "out")


def test_memory_estimate_is_bounded_by_blocks(tiny_model):
    pred = Predictor(tiny_model, (256, 256), block=2048)
    est = pred.estimate_bytes(20000, 20000)
    # uint8 image + mask (+ temporaries) ≈ 6 B/pixel, plus one block's floats (< 200 MB) and the
    # activations of one batch of windows (T=2, C=8: 16·2·8·4·256²·4 B = 256 MiB)
    assert pred.activation_bytes() == 16 * 2 * 8 * 4 * 256 * 256 * 4
    assert est < 20000 * 20000 * 6 + 200 * 2**20 + pred.activation_bytes()
    assert pred.estimate_bytes(20000, 20000) - pred.estimate_bytes(10000, 10000) == 6 * (
        20000**2 - 10000**2
    )


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("zero.png", b"", "empty file"),
        ("broken.jpg", b"\xff\xd8\xff\xe0garbage", "broken.jpg"),
        ("notes.txt", b"hello", "unsupported file type"),
    ],
)
def test_bad_files_name_the_file(predictor, tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        predict_paths(predictor, [path], tmp_path / "out")


def test_truncated_png_names_the_file(predictor, tmp_path):
    Image.fromarray(_rgb(60, 60)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t\.png"):
        predict_paths(predictor, [tmp_path / "t.png"], tmp_path / "out")


def test_expand_inputs(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "empty").mkdir()
    for name in ("b.png", "a.jpg", "c.nii.gz", "skip.txt"):
        (tmp_path / "d" / name).write_bytes(b"x")
    got = expand_inputs([tmp_path / "d", tmp_path / "d" / "a.jpg"])
    assert [p.name for p in got] == ["a.jpg", "b.png", "c.nii.gz"]
    with pytest.raises(DataError, match="no images in this folder"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(DataError, match="file not found"):
        expand_inputs([tmp_path / "missing.png"])


def test_duplicate_stems_get_distinct_outputs(predictor, tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        Image.fromarray(_rgb(20, 20)).save(tmp_path / sub / "same.png")
    predict_paths(predictor, [tmp_path / "x", tmp_path / "y"], tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "same-2_mask.png",
        "same_mask.png",
    ]


def test_bad_settings_are_config_errors(tiny_model):
    bad = (
        {"mode": "crop"},
        {"threshold": 1.5},
        {"overlap": 1.0},
        {"block": 0},
        {"ct_window": (5, 5)},
    )
    for kwargs in bad:
        with pytest.raises(ConfigError):
            Predictor(tiny_model, (SIZE, SIZE), **kwargs)


def test_grey_model_accepts_rgb_files(tmp_path):
    model = PointwiseModel(in_channels=1).eval()
    Image.fromarray(_rgb(30, 30)).save(tmp_path / "rgb.png")
    pred = Predictor(model, (16, 16), in_channels=1)
    predict_paths(pred, [tmp_path / "rgb.png"], tmp_path / "out")
    assert np.asarray(Image.open(tmp_path / "out" / "rgb_mask.png")).shape == (30, 30)


@pytest.mark.data
@pytest.mark.slow
def test_monuseg_tile_sliding_window(shared_data, tmp_path):
    """A real 1000×1000 MoNuSeg tile: the sliding-window mask has the tile's size."""
    from medspikeformer import create_model

    tif = sorted((shared_data / "monuseg" / "MoNuSegTestData").glob("*.tif"))[0]
    torch.manual_seed(0)
    model = create_model("medspikeformer", **SMALL_MSF).eval()
    pred = Predictor(model, (128, 128), mode="sliding", overlap=0.25, sw_batch_size=8)
    predict_paths(pred, [tif], tmp_path, overlay=True)
    mask = np.asarray(Image.open(tmp_path / f"{tif.stem}_mask.png"))
    assert mask.shape == (1000, 1000) and set(np.unique(mask)) <= {0, 255}
