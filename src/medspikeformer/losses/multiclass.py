"""Segmentation losses for K > 1 output channels; the binary Eq. 13 loss is in ``segmentation.py``.

* **Softmax heads** (K mutually exclusive classes, class 0 = background; target ``[B, 1, H, W]``
  holding class ids): cross-entropy (mean over pixels; the categorical form of Eq. 13's BCE) +
  the squared soft Dice of Eq. 13 per image and per *foreground* class against the one-hot
  target, averaged over classes 1…K−1 and the batch. Background is left out of the Dice term, as
  nnU-Net does: it is most of every image, and its near-perfect Dice would hide the classes that
  matter; the cross-entropy still scores it.
* **Sigmoid multi-label heads** (K overlapping regions, e.g. BraTS' whole tumour / tumour core /
  enhancing tumour; target ``[B, K, H, W]`` in {0, 1}): BCE (mean over pixels and channels) +
  the squared soft Dice per image and per channel, averaged over channels and the batch.

For a two-class softmax head whose logits are ``[0, z]`` the probabilities are
``[1 − σ(z), σ(z)]``: the cross-entropy equals Eq. 13's BCE of ``z`` and the Dice term its Dice,
so the K-class loss is the binary loss generalised, not another objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medspikeformer.errors import ConfigError
from medspikeformer.losses.segmentation import DEFAULT_DICE_EPS, BCEDiceLoss
from medspikeformer.precision import float32_region, upcast

__all__ = [
    "MultiClassDiceLoss",
    "build_segmentation_loss",
    "class_ids",
    "multiclass_components",
    "multilabel_components",
    "one_hot",
    "per_class_dice_loss",
]


def class_ids(target: Tensor, num_classes: int, *, check: bool = True) -> Tensor:
    """``[B, 1, H, W]`` class-id map (any dtype) → int64 ``[B, H, W]``; with ``check``, ids
    outside ``0..K−1`` → ``ValueError`` (a label map that does not match the model). The
    training step passes ``check=False``: the check reads the device, and the data layer has
    already refused unknown ids."""
    if target.dim() != 4 or target.shape[1] != 1:
        raise ValueError(f"expected a class-id map [B, 1, H, W], got {tuple(target.shape)}")
    ids = target[:, 0].round().long()
    if check and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_classes):
        raise ValueError(
            f"class ids must be in 0..{num_classes - 1}, got {int(ids.min())}..{int(ids.max())}"
        )
    return ids


def one_hot(target: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``[B, 1, H, W]`` class ids → one-hot ``[B, K, H, W]`` of ``dtype``."""
    ids = class_ids(target, num_classes)
    return F.one_hot(ids, num_classes).permute(0, 3, 1, 2).to(dtype)


def per_class_dice_loss(probs: Tensor, target: Tensor, eps: float = DEFAULT_DICE_EPS) -> Tensor:
    """Eq. 13's squared soft Dice per image and channel: ``[B, K, H, W]`` → ``[B, K]`` losses
    ``1 − (2 Σ ŷ y + ε) / (Σ ŷ² + Σ y² + ε)`` (sums over H, W)."""
    target = target.to(probs.dtype)
    dims = tuple(range(2, probs.dim()))
    intersection = (probs * target).sum(dims)
    denominator = (probs * probs).sum(dims) + (target * target).sum(dims)
    return 1.0 - (2.0 * intersection + eps) / (denominator + eps)


def multiclass_components(
    logits: Tensor, target: Tensor, eps: float = DEFAULT_DICE_EPS
) -> dict[str, Tensor]:
    """Softmax head: ``{"bce": cross-entropy, "dice": foreground Dice}`` (scalars).

    Args:
        logits: ``[B, K, H, W]``, K ≥ 2.
        target: ``[B, 1, H, W]`` class ids in ``0..K−1``.

    The cross-entropy is logged under ``bce`` (its binary special case) so that every run's
    ``metrics.csv`` has the same columns.
    """
    k = logits.shape[1]
    if k < 2:
        raise ValueError(f"a softmax head needs K >= 2 channels, got {tuple(logits.shape)}")
    if target.shape[0] != logits.shape[0] or target.shape[2:] != logits.shape[2:]:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in B, H or W"
        )
    ids = class_ids(target, k, check=False)
    ce = F.cross_entropy(logits, ids)
    probs = torch.softmax(logits, dim=1)
    hot = F.one_hot(ids, k).permute(0, 3, 1, 2).to(probs.dtype)
    dice = per_class_dice_loss(probs[:, 1:], hot[:, 1:], eps).mean()
    return {"bce": ce, "dice": dice}


def multilabel_components(
    logits: Tensor, target: Tensor, eps: float = DEFAULT_DICE_EPS
) -> dict[str, Tensor]:
    """Sigmoid multi-label head: ``{"bce", "dice"}`` with the Dice per channel (scalars).

    ``logits``, ``target``: ``[B, K, H, W]``, the target in {0, 1} per channel.
    """
    if logits.shape != target.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    dice = per_class_dice_loss(torch.sigmoid(logits), target, eps).mean()
    return {"bce": bce, "dice": dice}


class MultiClassDiceLoss(nn.Module):
    """The K-channel segmentation loss: ``bce_weight·(CE or BCE) + dice_weight·Dice``.

    Args:
        multilabel: sigmoid regions (target ``[B, K, H, W]``) instead of softmax classes (target
            ``[B, 1, H, W]`` class ids).
        eps, bce_weight, dice_weight: as for :class:`~medspikeformer.losses.BCEDiceLoss`.

    Same interface as ``BCEDiceLoss``: ``forward(logits, target) -> scalar`` and
    :meth:`components` → the unweighted ``{"bce", "dice"}`` terms.
    """

    def __init__(
        self,
        multilabel: bool = False,
        eps: float = DEFAULT_DICE_EPS,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if not eps > 0:
            raise ConfigError(f"MultiClassDiceLoss: eps must be > 0, got {eps}")
        self.multilabel = bool(multilabel)
        self.eps = float(eps)
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)

    def components(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Unweighted ``{"bce", "dice"}`` in float32 (autocast off, low-precision logits upcast)."""
        fn = multilabel_components if self.multilabel else multiclass_components
        with float32_region(logits.device.type):
            return fn(upcast(logits), target, self.eps)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        parts = self.components(logits, target)
        return self.bce_weight * parts["bce"] + self.dice_weight * parts["dice"]

    def extra_repr(self) -> str:
        return f"multilabel={self.multilabel}, eps={self.eps}"


def build_segmentation_loss(num_classes: int = 1, multilabel: bool = False) -> nn.Module:
    """The segmentation loss of a model with ``num_classes`` outputs: Eq. 13's
    :class:`~medspikeformer.losses.BCEDiceLoss` for one channel (binary, unchanged), else
    :class:`MultiClassDiceLoss` (softmax classes, or sigmoid regions with ``multilabel``)."""
    if num_classes == 1:
        return BCEDiceLoss()
    return MultiClassDiceLoss(multilabel=multilabel)
