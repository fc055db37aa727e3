"""Each loader reads a generated fixture in its exact published layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_layouts import MONUSEG_POLYS, write_busi, write_folder, write_isic

from medspikeformer.data import build_dataset, build_source, list_datasets
from medspikeformer.data.datasets.covid19 import window_ct
from medspikeformer.data.datasets.monuseg import rasterise_aperio_xml


def check_items(ds, size=(32, 32), channels=3) -> None:
    assert len(ds) > 0
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (channels, *size) and item["image"].dtype == torch.float32
        assert item["mask"].shape == (1, *size) and item["mask"].dtype == torch.float32
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
        assert isinstance(item["id"], str)


def test_list_datasets() -> None:
    names = set(list_datasets())
    assert {"isic2018", "kvasir", "busi", "monuseg", "covid19", "folder", "synthetic"} <= names


def test_isic(isic_root: Path) -> None:
    ds = build_dataset("isic2018", isic_root, split="all", size=32, cache_dir=False)
    assert sorted(s.id for s in ds.samples) == [f"ISIC_{k:07d}" for k in range(5)]
    check_items(ds)
    # the mask is the published PNG, resized nearest: compare with the source at full size
    src = build_source("isic2018", isic_root)
    img, mask = src.load(ds.samples[0])
    assert img.shape == (40, 48, 3) and mask.dtype == bool and mask.any()


def test_isic_official_parts(tmp_path: Path) -> None:
    root = write_isic(tmp_path / "isic", n=3, parts=("Training", "Validation", "Test"))
    ds = build_dataset(
        "isic2018", root, split="test", split_spec="official", size=32, cache_dir=False
    )
    assert [s.id for s in ds.samples] == ["ISIC_0000006", "ISIC_0000007", "ISIC_0000008"]
    assert ds.split_info["ids"]["val"] == ["ISIC_0000003", "ISIC_0000004", "ISIC_0000005"]


@pytest.mark.parametrize("sub", ["", "Kvasir-SEG"])
def test_kvasir_both_roots(kvasir_root: Path, sub: str) -> None:
    ds = build_dataset(
        "kvasir", kvasir_root / sub if sub else kvasir_root, split="all", size=32, cache_dir=False
    )
    assert len(ds) == 6
    check_items(ds)


def test_kvasir_jpeg_mask_thresholded(kvasir_root: Path) -> None:
    src = build_source("kvasir", kvasir_root)
    s = src.scan().samples[0]
    from medspikeformer.data.io import read_image

    raw = read_image(s.masks[0])
    assert len(np.unique(raw)) > 2  # the JPEG mask really is noisy
    _, mask = src.load(s)
    np.testing.assert_array_equal(mask, raw > 127)


def test_busi_union_and_normal(busi_root: Path) -> None:
    ds = build_dataset("busi", busi_root, split="all", size=(40, 48), cache_dir=False)
    assert len(ds) == 9
    ids = {s.id for s in ds.samples}
    assert "normal (2)" in ids and "benign (1)" in ids
    s = next(s for s in ds.samples if s.id == "benign (1)")
    assert [m.name for m in s.masks] == ["benign (1)_mask.png", "benign (1)_mask_1.png"]
    item = ds[ds.samples.index(s)]
    assert item["mask"][0, -3, -3] == 1  # from _mask_1
    assert item["mask"][0].sum() > (item["mask"][0, -6:, -6:]).sum()  # plus the main mask
    normal = ds[[s.id for s in ds.samples].index("normal (1)")]
    assert normal["mask"].sum() == 0
    check_items(ds, size=(40, 48))
    # grey stored as RGB: all three channels equal
    assert torch.equal(item["image"][0], item["image"][1])


def test_busi_exclude_normal_and_parent_root(tmp_path: Path) -> None:
    root = write_busi(tmp_path / "b", per_class=2, extra_masks=False)
    ds = build_dataset(
        "busi",
        root / "Dataset_BUSI_with_GT",
        split="all",
        size=32,
        cache_dir=False,
        include_normal=False,
    )
    assert len(ds) == 4 and not any(s.id.startswith("normal") for s in ds.samples)


def test_monuseg_layouts_and_union(monuseg_root: Path) -> None:
    train = build_dataset(
        "monuseg", monuseg_root, split="train", split_spec="official", size=40, cache_dir=False
    )
    test = build_dataset(
        "monuseg", monuseg_root, split="test", split_spec="official", size=40, cache_dir=False
    )
    assert [s.id for s in train.samples] == ["TCGA-AA-0001-01Z-00-DX1"]
    assert [s.id for s in test.samples] == ["TCGA-BB-0002-01Z-00-DX1"]
    m = train[0]["mask"][0].numpy().astype(bool)
    # pixel (r, c) is foreground iff its centre (c, r) is inside a polygon: check by hand
    ref = np.zeros((40, 40), bool)
    rr, cc = np.mgrid[0:40, 0:40]
    for x0, y0, x1, y1 in ((4.3, 4.2, 14.7, 12.6), (10.2, 8.1, 20.6, 18.4)):
        ref |= (cc >= x0) & (cc <= x1) & (rr >= y0) & (rr <= y1)
    tri = rasterise_aperio_xml(
        monuseg_root / "MoNuSegTestData" / "TCGA-BB-0002-01Z-00-DX1.xml", (40, 40)
    )
    np.testing.assert_array_equal(m[:20, :22], ref[:20, :22])
    assert m[10, 12]  # the overlap of the two rectangles stays foreground (union, not XOR)
    assert tri[28, 30] and not tri[24, 30] and tri[25, 30]  # integer edge: half-open rule
    assert m.sum() == tri.sum()
    # each sub-folder alone is also accepted
    solo = build_dataset(
        "monuseg", monuseg_root / "MoNuSegTestData", split="all", size=40, cache_dir=False
    )
    assert len(solo) == 1


def test_monuseg_polygon_area_matches_shoelace() -> None:
    from medspikeformer.data.datasets.monuseg import rasterise_polygons

    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    circle = np.stack([100 + 40.3 * np.cos(t), 90 + 40.3 * np.sin(t)], 1)
    m = rasterise_polygons([circle], (200, 200))
    x, y = circle[:, 0], circle[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert abs(m.sum() - area) / area < 0.01
    assert MONUSEG_POLYS  # fixture constant in use


def test_covid_slices_official(covid_slices_root: Path) -> None:
    tr = build_dataset(
        "covid19", covid_slices_root, split="train", split_spec="official", size=32,
        cache_dir=False, validation="test",
    )  # fmt: skip
    te = build_dataset(
        "covid19", covid_slices_root, split="test", split_spec="official", size=32, cache_dir=False
    )
    assert [s.id for s in tr.samples] == ["train/1", "train/2", "train/3", "train/4"]
    assert len(te) == 3 and all(s.id.startswith("test/") for s in te.samples)
    check_items(tr)
    one = build_dataset(
        "covid19", covid_slices_root, split="all", size=32, in_channels=1, cache_dir=False
    )
    check_items(one, channels=1)


def test_covid_nifti(covid_nifti_root: Path) -> None:
    import nibabel as nib

    ds = build_dataset("covid19", covid_nifti_root, split="all", size=(20, 24), cache_dir=False)
    assert ds.source.form == "nifti"
    assert len(ds) == 3 * 6
    assert ds.samples[0].id == "coronacases_001_z000"
    sid = "coronacases_002_z003"
    i = [s.id for s in ds.samples].index(sid)
    img, mask = ds.load_arrays(i)
    # the identity affine is RAS: radiological slice = rot90 then left-right flip of vol[:, :, z]
    hu = np.asarray(
        nib.load(covid_nifti_root / "COVID-19-CT-Seg_20cases" / "coronacases_002.nii.gz").dataobj
    )
    expected = window_ct(np.rot90(hu[:, :, 3].astype(np.float32))[:, ::-1])
    np.testing.assert_array_equal(img, expected)
    m = np.zeros((24, 20, 6), np.uint8)
    m[5:12, 4:9, 2:4] = 1
    np.testing.assert_array_equal(mask, np.rot90(m[:, :, 3])[:, ::-1])
    only = build_dataset(
        "covid19", covid_nifti_root, split="all", size=16, cache_dir=False, infected_only=True
    )
    assert sorted(s.id for s in only.samples)[:2] == [
        "coronacases_001_z002",
        "coronacases_001_z003",
    ]
    assert len(only) == 6
    # slices of one case never straddle splits
    tr = build_dataset(
        "covid19", covid_nifti_root, split="train", size=16, split_spec="2/1", cache_dir=False
    )
    te_ids = tr.split_info["ids"]["test"]
    assert {i.rsplit("_z", 1)[0] for i in tr.split_info["ids"]["train"]}.isdisjoint(
        {i.rsplit("_z", 1)[0] for i in te_ids}
    )


def test_window_ct() -> None:
    hu = np.array([-2000.0, -1000.0, -300.0, 400.0, 3000.0])
    np.testing.assert_array_equal(window_ct(hu), [0, 0, 128, 255, 255])
    np.testing.assert_array_equal(window_ct(hu, (-1000, 0)), [0, 0, 178, 255, 255])


def test_folder(folder_root: Path, tmp_path: Path) -> None:
    ds = build_dataset("folder", folder_root, split="all", size=32, cache_dir=False)
    assert len(ds) == 4
    check_items(ds)
    root = write_folder(tmp_path / "f2", n=3, suffix="_seg", ext=".bmp")
    ds = build_dataset(
        "folder", root, split="all", size=32, cache_dir=False, mask_suffix="_seg", mask_ext="bmp"
    )
    assert [s.masks[0].name for s in ds.samples] == [
        "case0_seg.bmp",
        "case1_seg.bmp",
        "case2_seg.bmp",
    ]


def test_synthetic_items() -> None:
    ds = build_dataset("synthetic", split="all", size=32, num_samples=6)
    assert len(ds) == 6
    check_items(ds)
    again = build_dataset("synthetic", split="all", size=32, num_samples=6)
    assert torch.equal(ds[3]["image"], again[3]["image"])
    other = build_dataset("synthetic", split="all", size=32, num_samples=6, seed=7)
    assert not torch.equal(ds[3]["image"], other[3]["image"])


def test_synthetic_seed_option_zero() -> None:
    a = build_dataset("synthetic", split="all", size=16, num_samples=2, seed=0)
    b = build_dataset("synthetic", split="all", size=16, num_samples=2, seed=41)
    assert a.source.gen_seed == 0 and b.source.gen_seed == 41
    assert not torch.equal(a[0]["image"], b[0]["image"])


def test_synthetic_mask_is_the_large_ringed_object() -> None:
    """The mask is one connected object, larger than every distractor, darker at its border."""
    import cv2

    from medspikeformer.data import make_synthetic_pair

    for i in range(5):
        img, mask = make_synthetic_pair(i, 41, (128, 128))
        n, _ = cv2.connectedComponents(mask.astype(np.uint8))
        assert n == 2  # background + one object
        frac = mask.mean()
        assert 0.05 < frac < 0.25
        grey = img.mean(axis=2)
        m = mask.astype(np.uint8)
        border = mask & ~cv2.erode(m, np.ones((3, 3), np.uint8)).astype(bool)
        inner = cv2.erode(m, np.ones((9, 9), np.uint8)).astype(bool)
        assert grey[border].mean() < grey[inner].mean() - 5  # the dark rim
