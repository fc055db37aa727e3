"""Eq. 13 segmentation loss: hand values, gradients, MONAI parity."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.errors import ConfigError
from medspikeformer.losses import BCEDiceLoss, bce_dice_components, bce_loss, soft_dice_loss


def _hand_bce(z: float, y: float) -> float:
    p = 1.0 / (1.0 + math.exp(-z))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_hand_computed_two_images() -> None:
    z = torch.tensor(
        [[[[0.0, 2.0], [-1.0, 3.0]]], [[[-2.0, -2.0], [1.0, 0.5]]]], dtype=torch.float64
    )
    y = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]], [[[0.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)
    eps = 1.0
    zs, ys = z.flatten().tolist(), y.flatten().tolist()
    bce = sum(_hand_bce(a, b) for a, b in zip(zs, ys)) / len(zs)
    dices = []
    for b in range(2):
        p = [1 / (1 + math.exp(-v)) for v in z[b].flatten().tolist()]
        t = y[b].flatten().tolist()
        num = 2 * sum(a * c for a, c in zip(p, t)) + eps
        den = sum(a * a for a in p) + sum(c * c for c in t) + eps
        dices.append(1 - num / den)
    dice = sum(dices) / 2
    parts = BCEDiceLoss(eps=eps).components(z, y)
    assert parts["bce"].item() == pytest.approx(bce, rel=1e-12)
    assert parts["dice"].item() == pytest.approx(dice, rel=1e-12)
    assert BCEDiceLoss(eps=eps)(z, y).item() == pytest.approx(bce + dice, rel=1e-12)
    weighted = BCEDiceLoss(eps=eps, bce_weight=0.25, dice_weight=2.0)(z, y).item()
    assert weighted == pytest.approx(0.25 * bce + 2.0 * dice, rel=1e-12)


def test_dice_is_per_image_not_per_batch() -> None:
    # A perfect image and an empty-predicted image: per-image mean differs from a pooled Dice.
    y = torch.zeros(2, 1, 4, 4)
    y[0, :, :2] = 1
    y[1, :, :, :1] = 1
    p = torch.zeros_like(y)
    p[0] = y[0]
    per_image = soft_dice_loss(p, y, eps=1e-6).item()
    assert per_image == pytest.approx(0.5, abs=1e-6)
    pooled = 1 - (2 * (p * y).sum()) / ((p * p).sum() + (y * y).sum())
    assert abs(per_image - pooled.item()) > 0.1


def test_perfect_prediction_gives_zero_dice() -> None:
    y = (torch.rand(3, 1, 16, 16) > 0.5).float()
    y[2] = 0  # an empty target predicted empty also has zero Dice loss
    logits = (y * 2 - 1) * 50.0
    assert bce_dice_components(logits, y)["dice"].item() == pytest.approx(0.0, abs=1e-6)
    assert bce_loss(logits, y).item() < 1e-12


def test_gradcheck_float64() -> None:
    z = torch.randn(2, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    y = (torch.rand(2, 1, 5, 6) > 0.5).double()
    loss = BCEDiceLoss(eps=0.5)
    assert torch.autograd.gradcheck(lambda a: loss(a, y), (z,))


@pytest.mark.parametrize("eps", [1e-5, 1.0])
def test_dice_matches_monai_dice_loss(eps: float) -> None:
    from monai.losses import DiceLoss

    z = torch.randn(4, 1, 12, 10, dtype=torch.float64)
    y = (torch.rand(4, 1, 12, 10) > 0.6).double()
    y[1] = 0
    ref = DiceLoss(
        sigmoid=True, squared_pred=True, batch=False, smooth_nr=eps, smooth_dr=eps, reduction="mean"
    )(z, y)
    ours = bce_dice_components(z, y, eps=eps)["dice"]
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), st.integers(0, 10_000))
def test_losses_bounded_and_finite(b: int, h: int, w: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, 1, h, w, generator=g) * 20
    y = (torch.rand(b, 1, h, w, generator=g) > 0.5).float()
    parts = bce_dice_components(z, y)
    assert torch.isfinite(parts["bce"]) and parts["bce"] >= 0
    assert 0.0 <= parts["dice"].item() <= 1.0


def test_errors() -> None:
    with pytest.raises(ConfigError, match="eps"):
        BCEDiceLoss(eps=0)
    with pytest.raises(ConfigError, match="weights"):
        BCEDiceLoss(bce_weight=-1)
    with pytest.raises(ValueError, match="same shape"):
        BCEDiceLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
