"""Streaming segmentation metrics: hand cases, empty masks, batching invariance, MONAI parity."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.errors import DataError
from medspikeformer.metrics import SegmentationMetrics, confusion_counts, metrics_from_confusion


def _mask(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).view(1, 1, len(rows), len(rows[0]))


def test_hand_computed_confusion() -> None:
    probs = torch.tensor([[0.9, 0.5, 0.49], [0.1, 0.7, 0.0]]).view(1, 1, 2, 3)
    target = _mask([[1, 0, 1], [0, 1, 0]])
    m = SegmentationMetrics()
    counts = m.update(probs, target, ids=["a"])
    # pred (>= 0.5): [[1,1,0],[0,1,0]] → TP=2 (0,0),(1,1); FP=1 (0,1); FN=1 (0,2); TN=2
    assert counts.tolist() == [[2, 1, 1, 2]]
    r = m.compute()
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (2, 1, 1, 2)
    assert r["miou"] == pytest.approx(2 / 4)
    assert r["dsc"] == pytest.approx(4 / 6)
    assert r["acc"] == pytest.approx(4 / 6)
    assert r["spe"] == pytest.approx(2 / 3)
    assert r["sen"] == pytest.approx(2 / 3)
    assert r["mean_dice"] == pytest.approx(4 / 6)
    assert r["mean_iou"] == pytest.approx(2 / 4)
    assert r["num_images"] == 1
    row = m.per_image()[0]
    assert row == {
        "id": "a",
        "dice": pytest.approx(4 / 6),
        "iou": 0.5,
        "tp": 2,
        "fp": 1,
        "fn": 1,
        "tn": 2,
    }


def test_global_matrix_differs_from_per_image_mean() -> None:
    m = SegmentationMetrics()
    # image 0: large object found perfectly; image 1: one-pixel object missed
    t0 = torch.zeros(1, 1, 4, 4)
    t0[..., :3, :] = 1
    t1 = torch.zeros(1, 1, 4, 4)
    t1[..., 0, 0] = 1
    m.update(t0.clone(), t0)
    m.update(torch.zeros_like(t1), t1)
    r = m.compute()
    assert r["miou"] == pytest.approx(12 / 13)
    assert r["dsc"] == pytest.approx(24 / 25)
    assert r["mean_dice"] == pytest.approx(0.5)
    assert r["mean_iou"] == pytest.approx(0.5)
    assert [row["id"] for row in m.per_image()] == ["0", "1"]


def test_threshold() -> None:
    probs = torch.full((1, 1, 2, 2), 0.7)
    target = torch.ones(1, 1, 2, 2)
    assert SegmentationMetrics(threshold=0.8).update(probs, target).tolist() == [[0, 0, 4, 0]]
    assert SegmentationMetrics(threshold=0.7).update(probs, target).tolist() == [[4, 0, 0, 0]]


def test_empty_mask_conventions() -> None:
    empty = torch.zeros(1, 1, 3, 3)
    full = torch.ones(1, 1, 3, 3)
    m = SegmentationMetrics()
    m.update(empty, empty, ids=["both-empty"])
    m.update(full, empty, ids=["pred-only"])
    m.update(empty, full, ids=["target-only"])
    rows = {r["id"]: r for r in m.per_image()}
    assert rows["both-empty"]["dice"] == 1.0 and rows["both-empty"]["iou"] == 1.0
    assert rows["pred-only"]["dice"] == 0.0 and rows["pred-only"]["iou"] == 0.0
    assert rows["target-only"]["dice"] == 0.0 and rows["target-only"]["iou"] == 0.0

    # global ratios with a zero denominator are 1.0
    only_empty = SegmentationMetrics()
    only_empty.update(empty, empty)
    r = only_empty.compute()
    assert r["miou"] == r["dsc"] == r["sen"] == 1.0
    assert r["acc"] == r["spe"] == 1.0
    all_fg = SegmentationMetrics()
    all_fg.update(full, full)
    assert all_fg.compute()["spe"] == 1.0
    assert metrics_from_confusion(0, 5, 0, 0) == {
        "miou": 0.0,
        "dsc": 0.0,
        "acc": 0.0,
        "spe": 0.0,
        "sen": 1.0,
    }


def test_reset_and_empty_compute() -> None:
    m = SegmentationMetrics()
    with pytest.raises(DataError, match="empty"):
        m.compute()
    m.update(torch.ones(2, 1, 2, 2), torch.ones(2, 1, 2, 2))
    m.reset()
    assert m.num_images == 0 and m.per_image() == []
    with pytest.raises(DataError):
        m.compute()


def test_input_validation() -> None:
    m = SegmentationMetrics()
    with pytest.raises(ValueError, match="sigmoid"):
        m.update(torch.randn(1, 1, 4, 4) * 5, torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="same shape"):
        m.update(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="ids"):
        m.update(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), ids=["x"])
    with pytest.raises(ValueError, match="threshold"):
        SegmentationMetrics(threshold=1.0)


def _random_set(seed: int, n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(n, 1, h, w, generator=g)
    target = (torch.rand(n, 1, h, w, generator=g) > 0.6).float()
    probs[0] = 0.0  # keep some empty predictions / targets in play
    target[-1] = 0.0
    return probs, target


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 9),
    st.integers(1, 7),
    st.integers(1, 7),
    st.lists(st.integers(1, 4), min_size=1, max_size=9),
)
def test_streaming_equals_all_at_once(seed: int, n: int, h: int, w: int, sizes: list[int]) -> None:
    probs, target = _random_set(seed, n, h, w)
    whole = SegmentationMetrics()
    whole.update(probs, target)
    streamed = SegmentationMetrics()
    start = 0
    for size in sizes * n:
        if start >= n:
            break
        streamed.update(probs[start : start + size], target[start : start + size])
        start += size
    if start < n:
        streamed.update(probs[start:], target[start:])
    assert streamed.compute() == whole.compute()
    assert streamed.per_image() == whole.per_image()


def test_state_merge_equals_single_accumulator() -> None:
    probs, target = _random_set(3, 7, 6, 5)
    whole = SegmentationMetrics()
    whole.update(probs, target)
    rank0, rank1 = SegmentationMetrics(), SegmentationMetrics()
    rank0.update(probs[:3], target[:3], ids=[str(i) for i in range(3)])
    rank1.update(probs[3:], target[3:], ids=[str(i) for i in range(3, 7)])
    rank0.merge(rank1.state())
    assert rank0.compute() == whole.compute()
    assert rank0.per_image() == whole.per_image()
    rank0.sync()  # no process group: a no-op
    assert rank0.compute() == whole.compute()


def test_against_monai() -> None:
    from monai.metrics import (
        DiceMetric,
        MeanIoU,
        compute_confusion_matrix_metric,
        get_confusion_matrix,
    )

    probs, target = _random_set(5, 6, 9, 8)
    target[2] = 0.0
    probs[2] = 0.0  # both empty
    ours = SegmentationMetrics()
    ours.update(probs, target)
    binary = (probs >= 0.5).float()

    # per-image Dice / IoU: MONAI with ignore_empty=False uses the same empty-mask convention
    dice = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    dice(binary, target)
    iou = MeanIoU(include_background=True, reduction="none", ignore_empty=False)
    iou(binary, target)
    rows = ours.per_image()
    torch.testing.assert_close(
        torch.tensor([r["dice"] for r in rows]), dice.aggregate().flatten().double().float()
    )
    torch.testing.assert_close(torch.tensor([r["iou"] for r in rows]), iou.aggregate().flatten())

    # global confusion matrix: MONAI's per-image [tp, fp, tn, fn], summed over the set
    cm = get_confusion_matrix(binary, target, include_background=True).sum(0)  # [1, 4]
    tp, fp, tn, fn = (int(v) for v in cm[0].tolist())
    r = ours.compute()
    assert (r["tp"], r["fp"], r["tn"], r["fn"]) == (tp, fp, tn, fn)
    for ours_key, monai_name in [
        ("sen", "sensitivity"),
        ("spe", "specificity"),
        ("acc", "accuracy"),
        ("dsc", "f1 score"),
        ("miou", "threat score"),
    ]:
        ref = compute_confusion_matrix_metric(monai_name, cm).item()
        assert r[ours_key] == pytest.approx(ref, rel=1e-6), ours_key


def test_confusion_counts_shape_and_dtype() -> None:
    pred = torch.rand(3, 1, 5, 5) > 0.5
    target = torch.rand(3, 1, 5, 5) > 0.5
    counts = confusion_counts(pred, target)
    assert counts.dtype == torch.int64 and counts.shape == (3, 4)
    assert (counts.sum(1) == 25).all()
