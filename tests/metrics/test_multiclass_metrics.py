"""K-class metrics: per-class one-vs-rest global confusion matrices, background left out of the
means, checked against MONAI where the conventions meet."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.metrics import compute_confusion_matrix_metric

from medspikeformer.metrics import SegmentationMetrics


def _batch(seed: int, k: int = 3, b: int = 3, h: int = 16, w: int = 16):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(b, k, h, w, generator=g) * 2, 1)
    target = torch.randint(0, k, (b, 1, h, w), generator=g).float()
    return probs, target


def _one_hot(ids: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(ids[:, 0].long(), k).permute(0, 3, 1, 2).float()


def test_global_metrics_match_monai_confusion_matrix() -> None:
    """Per class, the global matrix is MONAI's per-image confusion matrices summed, and
    sensitivity, specificity, accuracy, Dice (F1) and IoU (threat score) of it are MONAI's
    ``compute_confusion_matrix_metric``; the means leave out the background."""
    from monai.metrics import ConfusionMatrixMetric

    m = SegmentationMetrics(num_classes=3, class_names=["bg", "a", "b"])
    names = ["sensitivity", "specificity", "accuracy", "f1 score", "threat score"]
    monai = ConfusionMatrixMetric(include_background=True, metric_name=names)
    for seed in range(3):
        probs, target = _batch(seed)
        m.update(probs, target)
        pred = _one_hot(probs.argmax(1, keepdim=True).float(), 3)
        monai(y_pred=pred, y=_one_hot(target, 3))
    ours = m.compute()
    conf = torch.stack([torch.tensor(list(c.values())) for c in m.class_confusion().values()])
    tp, fp, fn, tn = conf.T.double()
    # MONAI's buffer holds each image's [K, 4] (tp, fp, tn, fn); summed over the images it is
    # our global matrix, and its metric of that matrix is ours
    monai_counts = monai.get_buffer().sum(0)
    assert monai_counts[:, 0].tolist() == tp.tolist() and monai_counts[:, 1].tolist() == fp.tolist()
    assert monai_counts[:, 2].tolist() == tn.tolist() and monai_counts[:, 3].tolist() == fn.tolist()

    for key, name in zip(("sen", "spe", "acc", "dsc", "miou"), names):
        theirs = compute_confusion_matrix_metric(name, monai_counts)
        for c, cls in enumerate(("bg", "a", "b")):
            assert ours[f"{key}_{cls}"] == pytest.approx(float(theirs[c]), rel=1e-6)
        assert ours[key] == pytest.approx(float(theirs[1:].mean()), rel=1e-6)


def test_per_image_dice_matches_monai() -> None:
    from monai.metrics import DiceMetric

    probs, target = _batch(7)
    m = SegmentationMetrics(num_classes=3)
    m.update(probs, target, ["x", "y", "z"])
    pred = _one_hot(probs.argmax(1, keepdim=True).float(), 3)
    theirs = DiceMetric(include_background=False, reduction="none")(pred, _one_hot(target, 3))
    for row, expected in zip(m.per_image(), theirs):
        assert [row["dice_class1"], row["dice_class2"]] == pytest.approx(
            expected.tolist(), rel=1e-6
        )
        assert row["dice"] == pytest.approx(float(expected.mean()), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_two_class_softmax_equals_binary(seed: int) -> None:
    """A 2-class softmax model scores exactly as the binary model of its foreground."""
    g = torch.Generator().manual_seed(seed)
    p1 = torch.rand(2, 1, 8, 8, generator=g)
    target = (torch.rand(2, 1, 8, 8, generator=g) > 0.7).float()
    # argmax of [1 − p, p] is p > 0.5; keep p off 0.5 so ties cannot differ
    p1 = torch.where((p1 - 0.5).abs() < 1e-3, p1 + 0.01, p1)
    binary = SegmentationMetrics()
    binary.update(p1, target)
    multi = SegmentationMetrics(num_classes=2)
    multi.update(torch.cat([1 - p1, p1], 1), target)
    b, mc = binary.compute(), multi.compute()
    for key in ("miou", "dsc", "acc", "spe", "sen", "tp", "fp", "fn", "tn"):
        assert mc[key] == pytest.approx(b[key]), key


def test_background_included_on_request_and_multilabel_scores_every_channel() -> None:
    probs, target = _batch(2)
    with_bg = SegmentationMetrics(num_classes=3, include_background=True)
    with_bg.update(probs, target)
    r = with_bg.compute()
    assert r["dsc"] == pytest.approx((r["dsc_class0"] + r["dsc_class1"] + r["dsc_class2"]) / 3)
    ml = SegmentationMetrics(num_classes=3, multilabel=True)
    regions = (torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    ml.update(probs, regions)
    r = ml.compute()
    assert r["dsc"] == pytest.approx((r["dsc_class0"] + r["dsc_class1"] + r["dsc_class2"]) / 3)


def test_absent_classes_do_not_lift_the_per_image_mean() -> None:
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :2] = 1  # class 1 only; class 2 absent from target and prediction
    probs = torch.zeros(1, 3, 4, 4)
    probs[:, 0] = 1.0  # predicts background everywhere
    m = SegmentationMetrics(num_classes=3)
    m.update(probs, target)
    assert m.per_image()[0]["dice"] == 0.0
    assert m.per_image()[0]["dice_class2"] == 1.0


def test_state_merge_round_trip_multiclass() -> None:
    a, b, both = (SegmentationMetrics(num_classes=3) for _ in range(3))
    p1, t1 = _batch(1)
    p2, t2 = _batch(2)
    a.update(p1, t1, ["a0", "a1", "a2"])
    b.update(p2, t2, ["b0", "b1", "b2"])
    both.update(p1, t1, ["a0", "a1", "a2"])
    both.update(p2, t2, ["b0", "b1", "b2"])
    a.merge(b.state())
    assert a.compute() == both.compute()


def test_wrong_shapes_raise() -> None:
    m = SegmentationMetrics(num_classes=3)
    probs, target = _batch(0)
    with pytest.raises(ValueError, match="expected probs"):
        m.update(probs[:, :2], target)
    with pytest.raises(ValueError, match="expected target"):
        m.update(probs, target.repeat(1, 3, 1, 1))
    with pytest.raises(ValueError, match="apply the model's activation"):
        m.update(probs * 4 - 1, target)  # logits, not probabilities
