"""evaluate(): metrics equal a manual SegmentationMetrics pass; TTA; reports."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch.utils.data import DataLoader

from medspikeformer.data import build_dataset
from medspikeformer.inference import evaluate, forward_probs
from medspikeformer.metrics import SegmentationMetrics

from .helpers import SIZE


@pytest.fixture(scope="module")
def synthetic():
    return build_dataset("synthetic", split="all", size=SIZE, num_samples=6, cache_dir=False)


def _manual(model, dataset, threshold=0.5):
    metrics = SegmentationMetrics(threshold)
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            probs = torch.sigmoid(model(item["image"].unsqueeze(0)))
            metrics.update(probs, item["mask"].unsqueeze(0), [item["id"]])
    return metrics


def test_metrics_equal_manual_computation(tiny_model, synthetic):
    result = evaluate(tiny_model, synthetic, batch_size=4, device="cpu")
    manual = _manual(tiny_model, synthetic)
    expected = manual.compute()
    assert result.metrics.keys() >= {"miou", "dsc", "acc", "spe", "sen", "mean_dice", "mean_iou"}
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-12), key
    boundary = [{k: r.pop(k) for k in ("hd95", "nsd")} for r in result.per_image]
    # synthetic images are made at the evaluated size: native scores are the training-size ones
    assert result.resolution == "native"
    assert {(r.pop("size"), r.pop("spacing")) for r in result.per_image} == {("32x32", "1")}
    assert result.per_image == manual.per_image()
    assert [r["id"] for r in result.per_image] == [synthetic[i]["id"] for i in range(6)]
    # HD95 and NSD per image are MONAI's, on the thresholded masks at the evaluated size
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    with torch.no_grad():
        for i, scores in enumerate(boundary):
            item = synthetic[i]
            pred = torch.sigmoid(tiny_model(item["image"][None])) >= 0.5
            truth = item["mask"][None] >= 0.5
            if pred.any() != truth.any():
                assert scores == {"hd95": None, "nsd": None}
                continue

            def onehot(m):
                return torch.cat([~m, m], dim=1).float()

            hd = compute_hausdorff_distance(onehot(pred), onehot(truth), percentile=95)
            nsd = compute_surface_dice(onehot(pred), onehot(truth), class_thresholds=[2.0])
            assert scores["hd95"] == pytest.approx(float(hd), abs=1e-4)
            assert scores["nsd"] == pytest.approx(float(nsd), abs=1e-4)
    defined = [b["hd95"] for b in boundary if b["hd95"] is not None]
    assert result.metrics["hd95"] == pytest.approx(sum(defined) / len(defined))


def test_threshold_is_used(pointwise, synthetic):
    low = evaluate(pointwise, synthetic, threshold=0.05, device="cpu")
    high = evaluate(pointwise, synthetic, threshold=0.95, device="cpu")
    manual_low = _manual(pointwise, synthetic, 0.05).compute()
    manual_high = _manual(pointwise, synthetic, 0.95).compute()
    assert low.metrics["tp"] == manual_low["tp"] and high.metrics["tp"] == manual_high["tp"]
    assert low.metrics["tp"] + low.metrics["fp"] > high.metrics["tp"] + high.metrics["fp"]


def test_loader_and_dataset_give_the_same_result(tiny_model, synthetic):
    a = evaluate(tiny_model, synthetic, batch_size=4, device="cpu")
    b = evaluate(tiny_model, DataLoader(synthetic, batch_size=3), device="cpu")
    assert a.metrics == b.metrics
    assert a.per_image == b.per_image


def test_tta_is_the_mean_of_the_three_flips(tiny_model):
    torch.manual_seed(1)
    x = torch.rand(2, 3, SIZE, SIZE) * 3.0
    with torch.no_grad():
        got = forward_probs(tiny_model, x, tta_flip=True)
        p0 = torch.sigmoid(tiny_model(x))
        ph = torch.sigmoid(tiny_model(x.flip(-1))).flip(-1)
        pv = torch.sigmoid(tiny_model(x.flip(-2))).flip(-2)
    torch.testing.assert_close(got, (p0 + ph + pv) / 3.0, rtol=0, atol=1e-6)


def test_tta_is_flip_consistent_for_an_equivariant_model(pointwise, synthetic):
    plain = evaluate(pointwise, synthetic, device="cpu")
    tta = evaluate(pointwise, synthetic, tta_flip=True, device="cpu")
    assert tta.tta_flip and not plain.tta_flip
    assert tta.metrics == plain.metrics


def test_tta_runs_in_evaluate(tiny_model, synthetic):
    result = evaluate(tiny_model, synthetic, tta_flip=True, device="cpu")
    assert result.metrics["num_images"] == len(synthetic)
    assert 0.0 <= result.metrics["miou"] <= 1.0


def test_reports_written(tiny_model, synthetic, tmp_path):
    result = evaluate(tiny_model, synthetic, device="cpu", keep_samples=2, info={"note": "x"})
    paths = result.save(tmp_path / "out")
    with paths["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(synthetic)
    assert set(rows[0]) == {
        *("id", "dice", "iou", "tp", "fp", "fn", "tn", "hd95", "nsd"),
        *("resolution", "size", "spacing"),
    }
    assert {r["resolution"] for r in rows} == {"native"}
    assert float(rows[0]["dice"]) == pytest.approx(result.per_image[0]["dice"], abs=1e-6)
    summary = json.loads(paths["json"].read_text())
    assert summary["metrics"]["miou"] == pytest.approx(result.metrics["miou"])
    assert summary["info"]["note"] == "x" and summary["threshold"] == 0.5
    assert summary["resolution"] == "native" and summary["scored_per"] == "image"
    md = paths["markdown"].read_text()
    assert "| mIoU |" in md and "| DSC |" in md and "Lowest per-image Dice" in md
    assert "HD95" in md and "NSD" in md
    assert len(result.samples) == 2
    image, mask, probs, _ = result.samples[0]
    assert image.shape == (3, SIZE, SIZE) and mask.shape == probs.shape == (1, SIZE, SIZE)


def test_empty_dataset_is_a_clear_error(tiny_model):
    from medspikeformer.errors import DataError

    with pytest.raises(DataError, match="empty"):
        evaluate(tiny_model, [], device="cpu")
