"""Label maps: the ``data.labels`` mapping, integer-id readers (PNG/TIFF/NIfTI), label-map
datasets (folder, BUSI classes, Decathlon) and ``data check``'s class report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medspikeformer.data import LabelSpec, build_dataset, read_label_map
from medspikeformer.data.base import resize_pair
from medspikeformer.errors import ConfigError, DataError


def test_classes_are_ordered_by_id_and_remapped() -> None:
    spec = LabelSpec.from_mapping({"lesion": 255, "background": 0})
    assert spec.names == ("background", "lesion") and not spec.multilabel
    target = spec.encode(np.array([[0, 255], [255, 0]], np.uint8))
    assert target.shape == (1, 2, 2) and target.tolist() == [[[0.0, 1.0], [1.0, 0.0]]]


def test_regions_overlap() -> None:
    spec = LabelSpec.from_mapping({"whole": [1, 2, 3], "core": [2, 3], "enhancing": [3]})
    assert spec.multilabel and spec.num_classes == 3 and spec.known_ids == {0, 1, 2, 3}
    target = spec.encode(np.array([[0, 1, 2, 3]], np.uint8))
    assert target.tolist() == [[[0, 1, 1, 1]], [[0, 0, 1, 1]], [[0, 0, 0, 1]]]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"a": 0}, "at least two"),
        ({"a": 0, "b": [1]}, "not a mix"),
        ({"a": 0, "b": 0}, "id 0 is given to both"),
        ({"a": 0, "b": -1}, "integers in 0..65535"),
        ({"a": 0, "b": "x"}, "integers"),
        ({"a": [1], "b": []}, "at least one id"),
    ],
)
def test_bad_mappings(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LabelSpec.from_mapping(bad)


def test_unknown_ids_name_the_file() -> None:
    spec = LabelSpec.from_mapping({"background": 0, "a": 1})
    with pytest.raises(DataError, match=r"m\.png: label id\(s\) 7 not in data.labels"):
        spec.check(np.array([[0, 1, 7]]), "m.png")


@settings(max_examples=30, deadline=None)
@given(
    ids=st.lists(st.integers(0, 300), min_size=1, max_size=5, unique=True),
    h=st.integers(3, 20),
    w=st.integers(3, 20),
)
def test_resize_keeps_label_ids(ids: list[int], h: int, w: int) -> None:
    """Nearest-neighbour: a resized label map holds only ids of the original (and a wide id
    survives in uint16)."""
    rng = np.random.default_rng(len(ids) * h * w)
    mask = rng.choice(np.asarray(ids, np.uint16), size=(17, 13))
    _, out = resize_pair(np.zeros((17, 13), np.uint8), mask, (h, w), label_map=True)
    assert set(np.unique(out)) <= set(ids)
    if max(ids) > 255:
        assert out.dtype == np.uint16


@pytest.mark.parametrize("kind", ["png8", "png16", "palette", "tiff", "rgb-grey"])
def test_read_label_map_keeps_ids(tmp_path: Path, kind: str) -> None:
    ids = np.array([[0, 1, 2], [3, 2, 1]], np.uint8)
    path = tmp_path / ("m.tif" if kind == "tiff" else "m.png")
    if kind == "png16":
        ids = ids.astype(np.uint16) * 300
        Image.fromarray(ids).save(path)
    elif kind == "palette":
        im = Image.fromarray(ids, mode="L").convert("P")
        im.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
        Image.fromarray(ids).convert("P").save(path)
    elif kind == "tiff":
        import tifffile

        tifffile.imwrite(path, ids)
    elif kind == "rgb-grey":
        Image.fromarray(np.repeat(ids[..., None], 3, -1)).save(path)
    else:
        Image.fromarray(ids).save(path)
    assert read_label_map(path).tolist() == ids.tolist()


def test_read_label_map_refuses_colour(tmp_path: Path) -> None:
    path = tmp_path / "c.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (4, 4, 3), np.uint8)).save(path)
    with pytest.raises(DataError, match=r"c\.png: a colour image is not a label map"):
        read_label_map(path)


def _folder(tmp_path: Path, ids: list[int]) -> Path:
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    for i, top in enumerate(ids):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(
            tmp_path / "images" / f"{i}.png"
        )
        m = np.zeros((16, 16), np.uint8)
        m[:8] = top
        Image.fromarray(m).save(tmp_path / "masks" / f"{i}.png")
    return tmp_path


def test_folder_label_maps_give_class_indices(tmp_path: Path) -> None:
    root = _folder(tmp_path, [1, 2, 2, 1])
    cache = tmp_path / "cache"
    # first the binary view (any id > 0 is foreground), cached …
    binary = build_dataset("folder", root, split="all", size=8, cache_dir=cache, label_map=True)
    assert [float(binary[i]["mask"].max()) for i in range(4)] == [1.0] * 4
    # … then the class view of the same files: not served from the binary cache entries
    ds = build_dataset("folder", root, split="all", size=8, cache_dir=cache, label_map=True,
                       labels={"background": 0, "a": 1, "b": 2})  # fmt: skip
    assert [float(ds[i]["mask"].max()) for i in range(4)] == [1.0, 2.0, 2.0, 1.0]
    assert ds[0]["mask"].shape == (1, 8, 8)


def test_unknown_id_in_a_label_map_is_a_data_error(tmp_path: Path) -> None:
    root = _folder(tmp_path, [1, 5])
    ds = build_dataset("folder", root, split="all", size=8, cache_dir=False, label_map=True,
                       labels={"background": 0, "a": 1})  # fmt: skip
    with pytest.raises(DataError, match=r"masks/1.png: label id\(s\) 5 not in data.labels"):
        [ds[i] for i in range(len(ds))]


def test_data_check_reports_frequencies_and_unknown_ids(tmp_path: Path) -> None:
    from medspikeformer.data.check import check_dataset

    root = _folder(tmp_path, [1, 2, 9])
    report = check_dataset("folder", root, progress=False, label_map=True,
                           labels={"background": 0, "a": 1, "b": 2})  # fmt: skip
    summary = report.summary()
    assert summary["classes"]["a"] == {"pixels": 128, "fraction": 128 / 640, "images": 1}
    assert summary["unknown_ids"] == {"9": 1}
    assert len(report.errors) == 1 and "2.png: label id(s) 9 not in the labels" in report.errors[0]


def test_data_check_cli_prints_classes(tmp_path: Path, capsys) -> None:
    from medspikeformer.cli import main

    root = _folder(tmp_path, [1, 2])
    code = main(["data", "check", "folder", "--root", str(root), "-o", "label_map=true",
                 "--labels", "{background: 0, a: 1, b: 2}"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "class a: 25.000% of labelled pixels, in 1 image(s)" in out


@pytest.mark.data
def test_busi_class_labels_follow_the_folder(shared_data: Path) -> None:
    root = shared_data / "busi"
    ds = build_dataset("busi", root, split="all", size=64, cache_dir=False, class_labels=True,
                       labels={"background": 0, "benign": 1, "malignant": 2})  # fmt: skip
    by_class = {"benign": 1.0, "malignant": 2.0}
    for i in range(0, len(ds), 9):
        item = ds[i]
        assert set(item["mask"].unique().tolist()) <= {0.0, by_class[item["id"].split(" ")[0]]}
    assert {float(ds[i]["mask"].max()) for i in range(len(ds))} == {1.0, 2.0}


def test_decathlon_reader_v1_layout_and_errors(tmp_path: Path) -> None:
    """Decathlon v1: one volume per case, labels as {"0": "background"}; channels by name."""
    import nibabel as nib

    from medspikeformer.data import build_source

    for d in ("imagesTr", "labelsTr"):
        (tmp_path / d).mkdir()
    lab = np.zeros((8, 8, 3), np.uint8)
    lab[2:5, 2:5, 1] = 1
    nib.save(
        nib.Nifti1Image(np.stack([lab * 1.0, lab * 2.0], -1), np.eye(4)),
        tmp_path / "imagesTr" / "c1.nii.gz",
    )
    nib.save(nib.Nifti1Image(lab, np.eye(4)), tmp_path / "labelsTr" / "c1.nii.gz")
    meta = {"modality": {"0": "FLAIR", "1": "T1"}, "labels": {"0": "background", "1": "edema"}}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    src = build_source("decathlon", tmp_path, channels=["T1"], foreground_only=True)
    assert src.labels == {"background": 0, "edema": 1}
    scan = src.scan()
    assert [s.id for s in scan.samples] == ["c1_z001"] and not scan.problems
    img, mask = src.load(scan.samples[0])
    assert img.shape == (8, 8) and img.max() == 255 and set(np.unique(mask)) == {0, 1}
    with pytest.raises(ConfigError, match="no channel 'CT'"):
        build_source("decathlon", tmp_path, channels=["CT"])
    (tmp_path / "dataset.json").write_text("{")
    with pytest.raises(DataError, match=r"dataset\.json: malformed JSON"):
        build_source("decathlon", tmp_path)


def test_item_masks_stay_binary_without_labels(tmp_path: Path) -> None:
    root = _folder(tmp_path, [1, 2])
    ds = build_dataset("folder", root, split="all", size=8, cache_dir=False, label_map=True)
    assert torch.equal(ds[1]["mask"].unique(), torch.tensor([0.0, 1.0]))
