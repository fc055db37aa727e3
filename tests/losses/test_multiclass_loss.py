"""K-class losses: softmax CE + foreground Dice, multi-label BCE + per-channel Dice, and the
categorical alignment of softmax stage heads."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.losses import (
    AlignmentLoss,
    BCEDiceLoss,
    MultiClassDiceLoss,
    alignment_components,
    bce_dice_components,
    build_segmentation_loss,
    multiclass_components,
    multilabel_components,
    one_hot,
)


def _pair(seed: int, k: int = 3, b: int = 2, h: int = 8, w: int = 8):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, h, w, generator=g) * 3
    ids = torch.randint(0, k, (b, 1, h, w), generator=g).float()
    return logits, ids


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_two_class_softmax_equals_binary_loss(seed: int) -> None:
    """Logits [0, z] give probabilities [1 − σ(z), σ(z)]: CE = BCE(z), foreground Dice = Dice(z)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 1, 8, 8, generator=g) * 4
    y = (torch.rand(2, 1, 8, 8, generator=g) > 0.6).float()
    multi = multiclass_components(torch.cat([torch.zeros_like(z), z], 1), y)
    binary = bce_dice_components(z, y)
    torch.testing.assert_close(multi["bce"], binary["bce"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(multi["dice"], binary["dice"], rtol=1e-5, atol=1e-6)


def test_softmax_dice_matches_monai() -> None:
    """The Dice term is MONAI's squared-prediction DiceLoss without the background, ε = 1."""
    from monai.losses import DiceLoss

    logits, ids = _pair(3)
    ours = multiclass_components(logits, ids)["dice"]
    monai = DiceLoss(
        include_background=False,
        to_onehot_y=True,
        softmax=True,
        squared_pred=True,
        smooth_nr=1.0,
        smooth_dr=1.0,
    )(logits, ids)
    torch.testing.assert_close(ours, monai, rtol=1e-5, atol=1e-6)
    ce = torch.nn.functional.cross_entropy(logits, ids[:, 0].long())
    torch.testing.assert_close(multiclass_components(logits, ids)["bce"], ce)


def test_multilabel_matches_monai_per_channel_dice() -> None:
    from monai.losses import DiceLoss

    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    target = (torch.rand(2, 3, 8, 8, generator=g) > 0.5).float()
    ours = multilabel_components(logits, target)
    monai = DiceLoss(sigmoid=True, squared_pred=True, smooth_nr=1.0, smooth_dr=1.0)(logits, target)
    torch.testing.assert_close(ours["dice"], monai, rtol=1e-5, atol=1e-6)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    torch.testing.assert_close(ours["bce"], bce)


def test_perfect_prediction_has_low_loss_and_gradients_flow() -> None:
    _, ids = _pair(1)
    good = one_hot(ids, 3) * 20 - 10
    bad = -good
    loss = MultiClassDiceLoss()
    assert loss(good, ids) < 0.01 < loss(bad, ids)
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    loss(logits, ids).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_build_segmentation_loss_keeps_binary_loss() -> None:
    assert type(build_segmentation_loss(1)) is BCEDiceLoss
    assert build_segmentation_loss(3).multilabel is False
    assert build_segmentation_loss(3, multilabel=True).multilabel is True


def test_one_hot_refuses_ids_outside_classes() -> None:
    with pytest.raises(ValueError, match=r"class ids must be in 0\.\.2"):
        one_hot(torch.full((1, 1, 2, 2), 3.0), 3)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), kl=st.sampled_from(["bernoulli", "paper"]))
def test_two_class_categorical_alignment_equals_bernoulli(seed: int, kl: str) -> None:
    """For a softmax head with logits [0, z] the categorical KL and ½Σ(p−q)² equal the binary
    Bernoulli KL and (p−q)² of z: the generalisation, not another objective."""
    g = torch.Generator().manual_seed(seed)
    s = [torch.randn(2, 1, 4, 4, generator=g) * 3 for _ in range(2)]
    t = [torch.randn(2, 1, 4, 4, generator=g) * 3 for _ in range(2)]
    two = [torch.cat([torch.zeros_like(x), x], 1) for x in s]
    two_t = [torch.cat([torch.zeros_like(x), x], 1) for x in t]
    binary = alignment_components(s, t, kl=kl)
    categorical = alignment_components(two, two_t, kl=kl, activation="softmax")
    torch.testing.assert_close(categorical["l2"], binary["l2"], rtol=1e-5, atol=1e-6)
    if kl == "bernoulli":  # the paper's one-sided term has no complement term to match
        torch.testing.assert_close(categorical["kl"], binary["kl"], rtol=1e-4, atol=1e-6)


def test_categorical_alignment_zero_at_equal_heads_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(0)
    s = [torch.randn(2, 4, 4, 4, generator=g)]
    loss = AlignmentLoss(activation="softmax")
    assert float(loss(s, [x.clone() for x in s])) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(s, [torch.randn(2, 4, 4, 4, generator=g)])) > 0.01


def test_alignment_rejects_unknown_activation() -> None:
    from medspikeformer.errors import ConfigError

    with pytest.raises(ConfigError, match="activation"):
        AlignmentLoss(activation="tanh")
