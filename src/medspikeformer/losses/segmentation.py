"""Segmentation loss of the paper, Eq. 13: binary cross-entropy + squared soft Dice.

``L_seg = BCE(ŷ, y) + 1 − (2 Σ ŷ y + ε) / (Σ ŷ² + Σ y² + ε)`` with ``ŷ = sigmoid(logits)``.

* BCE is computed from the logits (``binary_cross_entropy_with_logits``) for numerical stability and
  is the **mean** over all pixels of the batch (the paper writes a sum; the released code uses the
  mean, which keeps BCE and Dice on the same scale).
* The Dice term is computed **per image** (sums over C×H×W) and averaged over the batch.
* ``ε`` defaults to 1.0 (:data:`DEFAULT_DICE_EPS`), the ``smooth = 1`` of the VM-UNet / EGE-UNet loss
  the paper's code is built on. It is small against the pixel count of an image (65 536 at 256²)
  and makes the empty-target case well defined: an empty target predicted empty gives Dice loss 0.

See ``docs/metrics.md`` for the formulas and the comparison with MONAI's ``DiceLoss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medspikeformer.errors import ConfigError
from medspikeformer.precision import float32_region, upcast

__all__ = ["DEFAULT_DICE_EPS", "BCEDiceLoss", "bce_dice_components", "bce_loss", "soft_dice_loss"]

#: ε of the Dice term in Eq. 13 (numerator and denominator smoothing).
DEFAULT_DICE_EPS = 1.0


def _check_pair(logits: Tensor, target: Tensor) -> None:
    if logits.shape != target.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    if logits.dim() < 2:
        raise ValueError(f"expected a batch [B, ...], got shape {tuple(logits.shape)}")


def bce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """BCE part of Eq. 13, mean over every pixel of the batch.

    Args:
        logits: ``[B, 1, H, W]`` raw scores.
        target: ``[B, 1, H, W]`` in ``[0, 1]`` (usually ``{0, 1}``).

    Returns:
        scalar ``mean(−[y log σ(z) + (1−y) log(1−σ(z))])``.
    """
    _check_pair(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


def soft_dice_loss(probs: Tensor, target: Tensor, eps: float = DEFAULT_DICE_EPS) -> Tensor:
    """Dice part of Eq. 13 on probabilities, per image, averaged over the batch.

    ``1 − (2 Σ_i ŷ_i y_i + ε) / (Σ_i ŷ_i² + Σ_i y_i² + ε)``, sums over all non-batch axes.

    Args:
        probs: ``[B, ...]`` probabilities ``ŷ = sigmoid(logits)``.
        target: ``[B, ...]`` ground truth in ``[0, 1]``.
        eps: smoothing ε (> 0).

    Returns:
        scalar, mean over the batch of the per-image Dice loss.
    """
    _check_pair(probs, target)
    target = target.to(probs.dtype)
    dims = tuple(range(1, probs.dim()))
    intersection = (probs * target).sum(dims)
    denominator = (probs * probs).sum(dims) + (target * target).sum(dims)
    dice = (2.0 * intersection + eps) / (denominator + eps)
    return (1.0 - dice).mean()


def bce_dice_components(
    logits: Tensor, target: Tensor, eps: float = DEFAULT_DICE_EPS
) -> dict[str, Tensor]:
    """Both terms of Eq. 13: ``{"bce": ..., "dice": ...}`` (scalars; their sum is ``L_seg``)."""
    return {
        "bce": bce_loss(logits, target),
        "dice": soft_dice_loss(torch.sigmoid(logits), target, eps),
    }


class BCEDiceLoss(nn.Module):
    """``L_seg`` of Eq. 13 on logits: ``bce_weight·BCE + dice_weight·Dice``.

    Args:
        eps: Dice smoothing ε (default 1.0, see module docstring).
        bce_weight, dice_weight: weights of the two terms (1, 1 in the paper).

    ``forward(logits[B,1,H,W], target[B,1,H,W]) -> scalar``; :meth:`components` returns the
    unweighted terms as a dict for logging.
    """

    def __init__(
        self, eps: float = DEFAULT_DICE_EPS, bce_weight: float = 1.0, dice_weight: float = 1.0
    ) -> None:
        super().__init__()
        if not eps > 0:
            raise ConfigError(f"BCEDiceLoss: eps must be > 0, got {eps}")
        if bce_weight < 0 or dice_weight < 0:
            raise ConfigError(
                f"BCEDiceLoss: weights must be >= 0, got bce={bce_weight}, dice={dice_weight}"
            )
        self.eps = float(eps)
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)

    def components(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Unweighted ``{"bce", "dice"}`` terms (scalars), computed in float32 (bf16/fp16 logits
        are upcast, autocast is off: Dice's sums over 65 536 pixels need float32)."""
        with float32_region(logits.device.type):
            return bce_dice_components(upcast(logits), target, self.eps)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        parts = self.components(logits, target)
        return self.bce_weight * parts["bce"] + self.dice_weight * parts["dice"]

    def extra_repr(self) -> str:
        return f"eps={self.eps}, bce_weight={self.bce_weight}, dice_weight={self.dice_weight}"
