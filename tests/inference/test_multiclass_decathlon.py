"""A K-class run from a Decathlon-layout folder made here: train (tiny, one epoch), then evaluate,
predict, explain and export its checkpoint. Quick: 32² slices of four 32×32×4 volumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.cli import main
from tiny_models import TINY_MSF

LABELS = {"background": 0, "cyst": 1, "solid": 2}


def make_decathlon(root: Path, cases: int = 4, depth: int = 4) -> Path:
    """``Dataset001_Toy``: nnU-Net v2 names (``_0000`` channel files), two foreground labels."""
    import nibabel as nib

    folder = root / "Dataset001_Toy"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for c in range(cases):
        label = np.zeros((32, 32, depth), np.uint8)
        label[4 + c : 14 + c, 4:14, :] = 1
        label[18:28, 16 + c : 28 + c, 1:] = 2
        image = rng.normal(0, 0.3, label.shape).astype(np.float32) + label
        affine = np.eye(4)
        nib.save(nib.Nifti1Image(image, affine), folder / "imagesTr" / f"toy_{c:03d}_0000.nii.gz")
        nib.save(nib.Nifti1Image(label, affine), folder / "labelsTr" / f"toy_{c:03d}.nii.gz")
    meta = {
        "channel_names": {"0": "MRI"},
        "labels": LABELS,
        "numTraining": cases,
        "file_ending": ".nii.gz",
    }
    (folder / "dataset.json").write_text(json.dumps(meta))
    return folder


def _decathlon_data(root: Path, labels: dict) -> dict:
    """The data section of a quick run on the Decathlon folder made by ``make_decathlon``."""
    return {
        "dataset": "decathlon",
        "root": str(root),
        "size": 32,
        "split_spec": "50/0/50",
        "augment": "none",
        "cache_dir": "off",
        "labels": labels,
    }


def _tiny_run(data: dict, out: Path) -> dict:
    """The config of one quick epoch of the tiny MedSpikeFormer on ``data`` into ``out``."""
    return {
        "model": {"name": "medspikeformer", **TINY_MSF},
        "data": data,
        "train": {"epochs": 1, "batch_size": 4, "progress": False},
        "out": str(out),
    }


def test_decathlon_folder_trains_and_evaluates(tmp_path: Path) -> None:
    from medspikeformer.engine import train

    root = make_decathlon(tmp_path)
    config = _tiny_run(_decathlon_data(root, LABELS), tmp_path / "run")
    result = train(config, log=lambda _msg: None)
    run = Path(result["run_dir"])
    best = run / "best.pt"
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["model_config"]["num_classes"] == 3
    split = json.loads((run / "split.json").read_text())["ids"]
    cases = {part: {i.split("_z")[0] for i in ids} for part, ids in split.items() if ids}
    assert not cases["train"] & cases["test"]  # case-level split: no volume in two parts
    assert "val_dsc_cyst" in ckpt["metrics"] and "val_dsc_background" in ckpt["metrics"]

    assert main(["evaluate", str(best), "--split", "val", "--out", str(tmp_path / "ev"),
                 "--no-progress", "--grid", "2"]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())["metrics"]
    for key in ("miou", "dsc", "dsc_cyst", "dsc_solid", "sen_solid"):
        assert summary[key] == pytest.approx(ckpt["metrics"][f"val_{key}"], abs=1e-9)
    assert summary["dsc"] == pytest.approx((summary["dsc_cyst"] + summary["dsc_solid"]) / 2)
    assert "dice_solid" in (tmp_path / "ev" / "per_image.csv").read_text().splitlines()[0]
    # the 32² slices are the training size, so native = training-size counts; rows are cases
    report = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert report["scored_per"] == "case" and report["boundary_unit"] == "mm"
    rows = (tmp_path / "ev" / "per_image.csv").read_text().splitlines()[1:]
    assert rows and all("_z" not in r.split(",")[0] for r in rows)
    assert summary["hd95_cyst"] is not None or summary["boundary_undefined"] > 0
    assert (tmp_path / "ev" / "qualitative.png").is_file()

    image = tmp_path / "slice.png"
    Image.fromarray((np.random.default_rng(1).random((40, 36)) * 255).astype(np.uint8)).save(image)
    assert main(["predict", str(best), str(image), "--out", str(tmp_path / "pred"),
                 "--overlay", "--no-progress"]) == 0  # fmt: skip
    labels = np.asarray(Image.open(tmp_path / "pred" / "slice_mask.png"))
    assert labels.shape == (40, 36) and set(np.unique(labels)) <= {0, 1, 2}
    assert np.asarray(Image.open(tmp_path / "pred" / "slice_overlay.png")).shape == (40, 36, 3)
    assert main(["explain", str(best), str(image), "--out", str(tmp_path / "heat.png")]) == 0

    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency")
    import onnx

    assert main(["export", str(best), "--onnx", str(tmp_path / "m.onnx")]) == 0
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert meta["num_classes"] == "3" and meta["activation"] == "softmax"


def test_decathlon_regions_train_as_multilabel(tmp_path: Path) -> None:
    """``data.labels`` with regions (nnU-Net's region-based training): sigmoid channels,
    ``[K, H, W]`` targets, per-region metrics over every channel (no background channel)."""
    from medspikeformer.engine import train

    root = make_decathlon(tmp_path, cases=2, depth=2)
    config = {
        "model": {"name": "unet", "base_channels": 4, "num_levels": 2, "num_res_units": 0},
        "data": _decathlon_data(root, {"lesion": [1, 2], "solid": [2]}),
        "train": {"epochs": 1, "batch_size": 2, "progress": False},
        "out": str(tmp_path / "run"),
    }
    run = Path(train(config, log=lambda _msg: None)["run_dir"])
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["model_config"]["multilabel"] is True and ckpt["model_config"]["num_classes"] == 2
    metrics = ckpt["metrics"]
    assert metrics["val_dsc"] == pytest.approx(
        (metrics["val_dsc_lesion"] + metrics["val_dsc_solid"]) / 2
    )
    assert main(["evaluate", str(run / "last.pt"), "--split", "val", "--out", str(tmp_path / "ev"),
                 "--no-progress", "--grid", "1"]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())["metrics"]
    assert summary["dsc_solid"] == pytest.approx(metrics["val_dsc_solid"], abs=1e-9)


def test_a_decathlon_folder_trains_its_own_labels(tmp_path: Path) -> None:
    """Without ``data.labels`` the ``dataset.json`` labels are read (three labels: a 3-class
    model, recorded in config.yaml), not a binary model of "any id > 0"."""
    from medspikeformer.engine import train
    from medspikeformer.engine.config import load_config

    root = make_decathlon(tmp_path)
    data = {k: v for k, v in _decathlon_data(root, LABELS).items() if k != "labels"}
    lines: list[str] = []
    config = _tiny_run(data, tmp_path / "run")
    train(config, log=lines.append)
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert ckpt["model_config"]["num_classes"] == 3
    assert load_config(tmp_path / "run" / "config.yaml").data.labels == LABELS
    assert any("data.labels from the folder's dataset.json" in line for line in lines)


def test_nifti_predict_repeats_the_intensity_rule_of_training(tmp_path: Path, capsys) -> None:
    """A Decathlon model was trained on each case's 0.5–99.5 percentile window: predict on a
    NIfTI volume uses that rule (not the CT lung window, under which the toy volume's values,
    about 0…2, would all land in one grey level), and a --ct-window that departs from it is one
    warning line."""
    from medspikeformer.engine import train
    from medspikeformer.inference.predict import Predictor

    root = make_decathlon(tmp_path)
    config = _tiny_run(_decathlon_data(root, LABELS), tmp_path / "run")
    train(config, log=lambda _msg: None)
    best = tmp_path / "run" / "best.pt"
    recorded = torch.load(best, weights_only=True)["preprocessing"]["intensity"]
    assert recorded == {"window": "percentile", "range": [0.5, 99.5]}

    spans: list[int] = []
    real = Predictor.predict_array

    def spy(self, image, *args, **kwargs):
        spans.append(int(image.max()) - int(image.min()))
        return real(self, image, *args, **kwargs)

    volume = next((root / "imagesTr").iterdir())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Predictor, "predict_array", spy)
        assert main(["predict", str(best), str(volume), "--out", str(tmp_path / "p"),
                     "--no-progress"]) == 0  # fmt: skip
        assert spans and min(spans) > 100  # the case's own range spread over 0…255
        assert "warning" not in capsys.readouterr().err
        spans.clear()
        assert main(["predict", str(best), str(volume), "--out", str(tmp_path / "q"),
                     "--ct-window", "-1000", "400", "--no-progress"]) == 0  # fmt: skip
        assert max(spans) <= 2  # the lung window squeezes it into one or two grey levels
    err = capsys.readouterr().err
    assert "warning:" in err and "0.5–99.5 percentile range; --ct-window -1000 400" in err
