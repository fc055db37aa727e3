"""``evaluate`` at native resolution: the prediction resized back to each image's own size and
scored against its mask read at that size (2-D per image, 3-D per case with voxel spacing)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.data import build_dataset
from medspikeformer.data.base import resize_image
from medspikeformer.inference import evaluate

from .helpers import PointwiseModel

SHAPES = {"a": (50, 70), "b": (90, 40)}  # (H, W): neither is the training size


def make_folder(root: Path) -> Path:
    """Two RGB images of differing sizes, a bright square each and a mask offset from it."""
    rng = np.random.default_rng(3)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, (h, w) in SHAPES.items():
        img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        img[h // 4 : h // 4 + h // 3, w // 5 : w // 5 + w // 2] = 220
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 + 3 : h // 4 + h // 3 + 4, w // 5 - 2 : w // 5 + w // 2 - 3] = 255
        mask[2:4, 2:4] = 255  # a speck the downscaled prediction cannot see
        Image.fromarray(img).save(root / "images" / f"{name}.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return root


def _native_reference(model: torch.nn.Module, root: Path, size: int) -> dict[str, np.ndarray]:
    """Per image: the boolean prediction at native size and the truth, with numpy/OpenCV only."""
    out = {}
    for name, (h, w) in SHAPES.items():
        img = np.asarray(Image.open(root / "images" / f"{name}.png"))
        small = resize_image(img, (size, size)).astype(np.float32) / 255.0
        x = torch.from_numpy(small).permute(2, 0, 1)[None]
        with torch.no_grad():
            prob = torch.sigmoid(model(x))[0, 0].numpy()
        full = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        truth = np.asarray(Image.open(root / "masks" / f"{name}.png")) > 127
        out[name] = (full >= 0.5, truth)
    return out


def _counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    return (
        int((pred & truth).sum()),
        int((pred & ~truth).sum()),
        int((~pred & truth).sum()),
        int((~pred & ~truth).sum()),
    )


@pytest.mark.parametrize("size", [32, 64])
def test_native_scores_equal_numpy_on_masks_of_their_own_size(tmp_path, size):
    from monai.metrics import compute_hausdorff_distance

    root = make_folder(tmp_path / "data")
    model = PointwiseModel().eval()
    ds = build_dataset("folder", root, split="all", size=size, cache_dir=False)
    result = evaluate(model, ds, device="cpu")
    assert result.resolution == "native" and result.per == "image"
    reference = _native_reference(model, root, size)
    totals = np.zeros(4, np.int64)
    for row in result.per_image:
        pred, truth = reference[row["id"]]
        tp, fp, fn, tn = _counts(pred, truth)
        totals += (tp, fp, fn, tn)
        assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (tp, fp, fn, tn)
        assert tp + fp + fn + tn == pred.size  # scored at the image's own size
        assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
        assert row["size"] == "x".join(map(str, SHAPES[row["id"]])) and row["spacing"] == "1"
        onehot = [
            torch.from_numpy(np.stack([~m, m]).astype(np.float32))[None] for m in (pred, truth)
        ]
        hd95 = compute_hausdorff_distance(*onehot, include_background=False, percentile=95)
        assert row["hd95"] == pytest.approx(float(hd95), abs=1e-5)
    tp, fp, fn, _ = totals
    assert result.metrics["dsc"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
    assert result.metrics["miou"] == pytest.approx(tp / (tp + fp + fn), abs=1e-12)
    # the training-size score stays available, and it is another number
    small = evaluate(model, ds, device="cpu", resolution="training")
    assert small.resolution == "training"
    assert small.metrics["tp"] + small.metrics["fn"] != tp + fn
    assert {r["tp"] + r["fp"] + r["fn"] + r["tn"] for r in small.per_image} == {size * size}


def test_reports_say_where_they_were_scored(tmp_path):
    root = make_folder(tmp_path / "data")
    ds = build_dataset("folder", root, split="all", size=32, cache_dir=False)
    for resolution in ("native", "training"):
        paths = evaluate(PointwiseModel().eval(), ds, resolution=resolution).save(
            tmp_path / resolution
        )
        assert json.loads(paths["json"].read_text())["resolution"] == resolution
        rows = paths["csv"].read_text().splitlines()
        column = rows[0].split(",").index("resolution")
        assert {r.split(",")[column] for r in rows[1:]} == {resolution}
        assert f"| metric ({resolution}) |" in paths["markdown"].read_text()


def test_native_needs_a_dataset(tiny_model):
    from medspikeformer.errors import ConfigError

    batch = {"image": torch.rand(1, 3, 32, 32), "mask": torch.zeros(1, 1, 32, 32), "id": ["x"]}
    with pytest.raises(ConfigError, match="native-resolution"):
        evaluate(tiny_model, [batch], resolution="native")
    assert evaluate(tiny_model, [batch]).resolution == "training"  # what it can do, labelled


SPACING_XYZ = (0.8, 0.7, 2.5)  # voxel sizes along x, y, z of the volumes made below


def make_volumes(root: Path, cases: int = 2) -> Path:
    """A Decathlon folder of binary ``40 × 36 × 5`` volumes with anisotropic voxels."""
    import nibabel as nib

    folder = root / "Dataset002_Vol"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(1)
    for c in range(cases):
        label = np.zeros((40, 36, 5), np.uint8)
        label[6 + c : 24 + c, 8:26, 1:4] = 1
        image = rng.normal(0, 0.2, label.shape).astype(np.float32)
        image[4 + c : 22 + c, 9:28, 1:5] += 1.0  # the bright object, offset from the label
        affine = np.diag([*SPACING_XYZ, 1.0])
        nib.save(nib.Nifti1Image(image, affine), folder / "imagesTr" / f"v_{c:03d}_0000.nii.gz")
        nib.save(nib.Nifti1Image(label, affine), folder / "labelsTr" / f"v_{c:03d}.nii.gz")
    meta = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "organ": 1}}
    (folder / "dataset.json").write_text(json.dumps(meta))
    return folder


def test_volumes_are_scored_per_case_with_voxel_spacing(tmp_path):
    from monai.metrics import compute_hausdorff_distance

    from medspikeformer.data import to_model_input

    root = make_volumes(tmp_path)
    model = PointwiseModel().eval()
    ds = build_dataset("decathlon", root, split="all", size=32, cache_dir=False)
    result = evaluate(model, ds, device="cpu")
    assert result.per == "case" and result.boundary_unit == "mm"
    assert [r["id"] for r in result.per_image] == ["v_000", "v_001"]
    # numpy over each volume: every slice predicted at 32², resized back, stacked along z
    cases: dict[str, tuple[list, list]] = {}
    for sample in ds.samples:
        img, mask = ds.source.load_checked(sample)
        x = to_model_input(resize_image(img, (32, 32)), 3)[None]
        with torch.no_grad():
            prob = torch.sigmoid(model(x))[0, 0].numpy()
        pred = cv2.resize(prob, mask.shape[::-1], interpolation=cv2.INTER_LINEAR) >= 0.5
        cases.setdefault(sample.group, ([], []))
        cases[sample.group][0].append(pred)
        cases[sample.group][1].append(mask > 0)
    # slices shown as rows = y, columns = x: the volume [z, y, x] has spacing (z, y, x)
    spacing = (SPACING_XYZ[2], SPACING_XYZ[1], SPACING_XYZ[0])
    for row in result.per_image:
        pred, truth = (np.stack(v) for v in cases[row["id"]])
        assert pred.shape == (5, 36, 40)
        tp, fp, fn, tn = _counts(pred, truth)
        assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (tp, fp, fn, tn)
        assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
        assert row["spacing"] == "2.5x0.7x0.8" and row["size"] == "5x36x40"
        onehot = [
            torch.from_numpy(np.stack([~m, m]).astype(np.float32))[None] for m in (pred, truth)
        ]
        hd95 = compute_hausdorff_distance(
            *onehot, include_background=False, percentile=95, spacing=list(spacing)
        )
        assert row["hd95"] == pytest.approx(float(hd95), abs=1e-5)
        pixels = compute_hausdorff_distance(*onehot, include_background=False, percentile=95)
        assert float(pixels) != pytest.approx(float(hd95))  # the spacing matters here
    hd = [r["hd95"] for r in result.per_image]
    assert result.metrics["hd95"] == pytest.approx(np.mean(hd))
    assert result.metrics["hd95_median"] == pytest.approx(np.median(hd))


def test_k_class_boundary_metrics_are_monai_s_per_class(tmp_path):
    """HD95 per class equals MONAI's ``compute_hausdorff_distance`` on the one-hot masks
    (``include_background=False``); the image's value is the mean over the classes present."""
    from monai.metrics import compute_hausdorff_distance

    from medspikeformer import create_model
    from tiny_models import TINY_MSF

    from .helpers import calibrate

    torch.manual_seed(0)
    model = calibrate(create_model("medspikeformer", **TINY_MSF, num_classes=3))
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            root / "images" / f"m{i}.png"
        )
        label = np.zeros((32, 32), np.uint8)
        label[3 + i : 15, 4:20] = 1
        label[18:30, 10 + i : 28] = 2
        Image.fromarray(label).save(root / "masks" / f"m{i}.png")
    labels = {"background": 0, "cyst": 1, "solid": 2}
    ds = build_dataset(
        "folder", root, split="all", size=32, cache_dir=False, labels=labels, label_map=True
    )
    names = list(labels)
    result = evaluate(model, ds, class_names=names, resolution="training")
    for i, row in enumerate(result.per_image):
        item = ds[i]
        with torch.no_grad():
            pred = torch.softmax(model(item["image"][None]), 1).argmax(1)[0]
        onehot_pred = torch.stack([pred == c for c in range(3)]).float()[None]
        onehot_true = torch.stack([item["mask"][0] == c for c in range(3)]).float()[None]
        expected = compute_hausdorff_distance(
            onehot_pred, onehot_true, include_background=False, percentile=95
        )[0]
        present = []
        for c, name in enumerate(names[1:], start=1):
            if not onehot_pred[0, c].any():
                assert row[f"hd95_{name}"] is None
                continue
            assert row[f"hd95_{name}"] == pytest.approx(float(expected[c - 1]), abs=1e-5)
            present.append(row[f"hd95_{name}"])
        assert row["hd95"] == pytest.approx(np.mean(present) if present else None)
    assert {"hd95_cyst", "nsd_solid"} <= set(result.metrics)
    native = evaluate(model, ds, class_names=names)
    assert "hd95_solid" in native.per_image[0] and native.resolution == "native"
    md = native.to_markdown()
    assert "HD95 (px, mean per image)" in md and "| solid |" in md


def test_boundary_summary_has_mean_and_median():
    from medspikeformer.metrics.boundary import summarise_boundary_rows

    rows = [{"hd95": 1.0, "nsd": 0.5}, {"hd95": 2.0, "nsd": 0.7}, {"hd95": 9.0, "nsd": 0.9},
            {"hd95": None, "nsd": None}]  # fmt: skip
    out = summarise_boundary_rows(rows)
    assert out["hd95"] == pytest.approx(4.0) and out["hd95_median"] == pytest.approx(2.0)
    assert out["nsd"] == pytest.approx(0.7) and out["nsd_median"] == pytest.approx(0.7)
    assert out["boundary_undefined"] == 1


def test_covid_nifti_cases_take_the_spacing_of_the_reoriented_volume(tmp_path):
    """COVID-19-CT-Seg volumes stored with swapped in-plane axes (x along the second array
    axis): the case is scored on the RAS grid the loader shows, with that grid's spacing."""
    import nibabel as nib

    root = tmp_path / "covid"
    vol_dir, mask_dir = root / "COVID-19-CT-Seg_20cases", root / "Infection_Mask"
    vol_dir.mkdir(parents=True)
    mask_dir.mkdir()
    affine = np.array([[0, 0.9, 0, 0], [0.6, 0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]])
    rng = np.random.default_rng(7)
    for c in range(2):
        hu = rng.uniform(-1200, 600, (24, 20, 6)).astype(np.int16)
        mask = np.zeros((24, 20, 6), np.uint8)
        mask[5:12, 4:9, 2:4] = 1
        name = f"coronacases_{c + 1:03d}.nii.gz"
        nib.save(nib.Nifti1Image(hu, affine), vol_dir / name)
        nib.save(nib.Nifti1Image(mask, affine), mask_dir / name)
    ds = build_dataset("covid19", root, split="all", size=32, cache_dir=False)
    result = evaluate(PointwiseModel().eval(), ds, device="cpu")
    assert result.per == "case" and len(result.per_image) == 2
    for row in result.per_image:
        # world x = 0.9 mm × stored axis 1 (20 voxels), y = 0.6 mm × stored axis 0 (24): the
        # shown slice has rows along y (24 at 0.6 mm) and columns along x (20 at 0.9 mm)
        assert row["size"] == "6x24x20" and row["spacing"] == "3x0.6x0.9"
        assert row["tp"] + row["fn"] == 7 * 5 * 2  # the whole infection, every slice stacked
        assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == 6 * 24 * 20
