"""``Predictor.predict_proba`` / ``predict --probabilities`` and ``--largest-component``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.cli import main
from medspikeformer.inference.postprocess import largest_component_labels
from medspikeformer.inference.predict import Predictor
from tiny_models import TINY_MSF

from .helpers import SIZE, PointwiseModel, calibrate, make_checkpoint


def _image(h: int = 50, w: int = 70, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["resize", "sliding"])
def test_binary_probabilities_have_the_image_size_and_threshold_to_the_mask(mode):
    predictor = Predictor(PointwiseModel().eval(), (SIZE, SIZE), mode=mode)
    image = _image()
    probs = predictor.predict_proba(image)
    assert probs.shape == (1, 50, 70) and probs.dtype == np.float32
    assert probs.min() >= 0.0 and probs.max() <= 1.0 and 0 < (probs >= 0.5).mean() < 1
    expected = np.where(probs[0] >= 0.5, 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(predictor.predict_array(image), expected)
    np.testing.assert_array_equal(predictor.labels_of_proba(probs), expected)


def test_k_class_probabilities_are_a_softmax_at_native_size():
    from medspikeformer import create_model

    torch.manual_seed(0)
    model = calibrate(create_model("medspikeformer", **TINY_MSF, num_classes=3))
    predictor = Predictor(model, (SIZE, SIZE), mode="resize")
    image = _image(41, 27)
    probs = predictor.predict_proba(image)
    assert probs.shape == (3, 41, 27)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(predictor.labels_of_proba(probs), probs.argmax(0))


def test_predict_writes_probability_maps(tmp_path: Path):
    import tifffile

    ckpt = make_checkpoint(tmp_path / "run")
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(_image(45, 61)).save(images / "a.png")
    out = tmp_path / "out"
    rc = main(["predict", str(ckpt), str(images), "--out", str(out), "--probabilities",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    probs = tifffile.imread(out / "a_prob.tif")
    assert probs.dtype == np.float32 and probs.shape in ((1, 45, 61), (45, 61))
    mask = np.asarray(Image.open(out / "a_mask.png"))
    np.testing.assert_array_equal(mask, np.where(probs.reshape(45, 61) >= 0.5, 255, 0))


def test_predict_writes_a_nifti_probability_volume(tmp_path: Path):
    import nibabel as nib

    ckpt = make_checkpoint(tmp_path / "run")
    rng = np.random.default_rng(0)
    affine = np.diag([0.7, 0.8, 2.0, 1.0])
    nib.save(nib.Nifti1Image(rng.normal(0, 300, (40, 36, 3)).astype(np.float32), affine),
             tmp_path / "v.nii.gz")  # fmt: skip
    out = tmp_path / "out"
    assert main(["predict", str(ckpt), str(tmp_path / "v.nii.gz"), "--out", str(out),
                 "--probabilities", "--no-progress"]) == 0  # fmt: skip
    prob = nib.load(out / "v_prob.nii.gz")
    mask = np.asarray(nib.load(out / "v_mask.nii.gz").dataobj)
    data = np.asarray(prob.dataobj)
    assert data.dtype == np.float32 and data.shape == (40, 36, 3)
    np.testing.assert_allclose(prob.affine, affine)
    np.testing.assert_array_equal(mask, (data >= 0.5).astype(np.uint8))


def test_largest_component_keeps_only_the_largest_blob_of_each_class():
    labels = np.zeros((20, 20), np.uint8)
    labels[1:5, 1:5] = 1  # 16 pixels of class 1
    labels[10:12, 10:12] = 1  # 4 pixels of class 1: removed
    labels[15:19, 1:3] = 2  # 8 pixels of class 2
    labels[1:2, 15:18] = 2  # 3 pixels of class 2: removed
    kept = largest_component_labels(labels, 3, "softmax")
    expected = labels.copy()
    expected[10:12, 10:12] = 0
    expected[1:2, 15:18] = 0
    np.testing.assert_array_equal(kept, expected)
    binary = np.where(labels > 0, 255, 0).astype(np.uint8)
    only = largest_component_labels(binary, 1, "sigmoid")
    square = np.zeros((20, 20), bool)
    square[1:5, 1:5] = True
    np.testing.assert_array_equal(only > 0, square)
    assert set(np.unique(only)) == {0, 255}
    # regions (bits): each region on its own
    bits = np.zeros((20, 20), np.uint8)
    bits[1:5, 1:5] |= 1
    bits[10:11, 10:11] |= 1
    bits[1:3, 1:3] |= 2
    out = largest_component_labels(bits, 2, "sigmoid")
    assert out[10, 10] == 0 and out[1, 1] == 3 and out[4, 4] == 1
    # diagonal neighbours connect (full connectivity, MONAI's default); volumes work in 3-D
    vol = np.zeros((3, 6, 6), np.uint8)
    vol[0, 0, 0] = vol[1, 1, 1] = vol[2, 2, 2] = 1
    vol[0, 5, 5] = 1
    np.testing.assert_array_equal(largest_component_labels(vol, 2, "softmax")[0, 5, 5], 0)
    assert int(largest_component_labels(vol, 2, "softmax").sum()) == 3


def test_largest_component_in_predict_and_evaluate(tmp_path):
    from medspikeformer.data import build_dataset
    from medspikeformer.inference import evaluate

    image = np.zeros((40, 40, 3), np.uint8)
    image[2:14, 2:14] = 255  # the big bright blob
    image[30:35, 30:35] = 255  # a small one
    plain = Predictor(PointwiseModel().eval(), (SIZE, SIZE), mode="resize")
    kept = Predictor(PointwiseModel().eval(), (SIZE, SIZE), mode="resize", largest_component=True)
    both, one = plain.predict_array(image), kept.predict_array(image)
    assert both[32, 32] == 255 and one[32, 32] == 0 and one[8, 8] == 255
    np.testing.assert_array_equal(one, largest_component_labels(both, 1, "sigmoid"))
    # evaluate: the small blob is a false positive only without the option
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(image).save(root / "images" / "x.png")
    truth = np.zeros((40, 40), np.uint8)
    truth[2:14, 2:14] = 255
    Image.fromarray(truth).save(root / "masks" / "x.png")
    ds = build_dataset("folder", root, split="all", size=SIZE, cache_dir=False)
    with_fp = evaluate(PointwiseModel().eval(), ds)
    without = evaluate(PointwiseModel().eval(), ds, largest_component=True)
    assert (
        with_fp.per_image[0]["fp"]
        > without.per_image[0]["fp"]
        == int(((one > 0) & (truth == 0)).sum())
    )
    assert without.postprocessing and not with_fp.postprocessing
