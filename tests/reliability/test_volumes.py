"""Non-finite and odd volumes (issue 27, D): one NaN voxel no longer blanks a case or switches
its window; 4-D label maps and zero-slice files are one line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from medspikeformer.errors import DataError

from .helpers import assert_user_error, run_main, tiny_checkpoint

nib = pytest.importorskip("nibabel")


def _decathlon(root: Path, image: np.ndarray, label: np.ndarray) -> Path:
    for d in ("imagesTr", "labelsTr"):
        (root / d).mkdir(parents=True)
    nib.save(nib.Nifti1Image(image, np.eye(4)), root / "imagesTr" / "c1_0000.nii.gz")
    nib.save(nib.Nifti1Image(label, np.eye(4)), root / "labelsTr" / "c1.nii.gz")
    meta = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "lesion": 1},
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def _ramp(shape: tuple[int, int, int] = (8, 8, 3)) -> np.ndarray:
    return np.linspace(-1000, 1000, int(np.prod(shape)), dtype=np.float32).reshape(shape)


def test_one_nan_voxel_does_not_blank_a_decathlon_case(tmp_path: Path) -> None:
    from medspikeformer.data import build_source

    vol = _ramp()
    vol[0, 0, 0] = np.nan
    label = np.zeros(vol.shape, np.uint8)
    src = build_source("decathlon", _decathlon(tmp_path, vol, label))
    with pytest.warns(UserWarning, match=r"c1_0000\.nii\.gz: 1 non-finite voxel"):
        samples = src.scan().samples
        img, _ = src.load(samples[1])
    assert img.max() > 0 and len(np.unique(img)) > 10  # was all zeros


def test_nan_voxel_keeps_a_grey_covid_volume_grey(tmp_path: Path) -> None:
    from medspikeformer.data.datasets.covid19 import load_volume

    vol = np.tile(np.arange(0, 256, 4, dtype=np.float32), (8, 1))[:, :, None].repeat(2, 2)
    vol[1, 1, 0] = np.nan
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    with pytest.warns(UserWarning, match="non-finite"):
        data, grey = load_volume(path)
    assert grey, "a 0…255 volume with one NaN was switched to the lung window"
    assert np.isfinite(data).all()


def test_predict_on_a_volume_with_a_nan_keeps_the_grey_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medspikeformer.data import volume

    vol = np.full((32, 32, 2), 200.0, np.float32)
    vol[0, 0, 0] = np.nan
    with pytest.warns(UserWarning, match="non-finite"):
        fixed = volume.finite_volume(vol, "v.nii")
    assert fixed.min() == 200.0 and fixed.max() <= 255  # stays a grey volume
    ckpt = tiny_checkpoint(tmp_path)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_main(["predict", ckpt, path, "--out", tmp_path / "o"], capsys)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o" / "scan_mask.nii.gz").is_file()


def test_all_nan_volume_is_one_line(tmp_path: Path) -> None:
    from medspikeformer.data.volume import finite_volume

    with pytest.raises(DataError, match="no finite value"):
        finite_volume(np.full((2, 2, 2), np.nan, np.float32), "v.nii")


def test_four_d_label_map_is_one_line(tmp_path: Path) -> None:
    from medspikeformer.data import build_source

    vol = _ramp()
    label = np.zeros((*vol.shape, 2), np.uint8)
    src = build_source("decathlon", _decathlon(tmp_path, vol, label))
    scan = src.scan()
    assert not scan.samples
    assert any("c1.nii.gz: label volume of shape (8, 8, 3, 2)" in p for p in scan.problems)


def test_zero_slice_nifti_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medspikeformer.data import build_source

    root = tmp_path / "covid"
    (root / "COVID-19-CT-Seg_20cases").mkdir(parents=True)
    (root / "Infection_Mask").mkdir()
    empty = np.zeros((8, 8, 0), np.int16)
    nib.save(nib.Nifti1Image(empty, np.eye(4)), root / "COVID-19-CT-Seg_20cases" / "a.nii.gz")
    nib.save(
        nib.Nifti1Image(empty.astype(np.uint8), np.eye(4)), root / "Infection_Mask" / "a.nii.gz"
    )
    scan = build_source("covid19", root).scan()
    assert any("a.nii.gz: expected a 3-D volume with voxels" in p for p in scan.problems)
    ckpt = tiny_checkpoint(tmp_path)
    res = run_main(
        ["predict", ckpt, root / "COVID-19-CT-Seg_20cases" / "a.nii.gz", "--out", tmp_path / "o"],
        capsys,
    )
    assert_user_error(res, "a.nii.gz")
