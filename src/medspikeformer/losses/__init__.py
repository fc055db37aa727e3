"""Losses: Eq. 13 segmentation loss (BCE + Dice), the Eq. 12 distribution alignment loss and the
deep supervision of stage mask heads."""

from __future__ import annotations

from medspikeformer.losses.alignment import (
    KL_FORMS,
    AlignmentLoss,
    alignment_components,
    bernoulli_kl,
    paper_kl,
    squared_error,
    stage_probabilities,
)
from medspikeformer.losses.segmentation import (
    DEFAULT_DICE_EPS,
    BCEDiceLoss,
    bce_dice_components,
    bce_loss,
    soft_dice_loss,
)
from medspikeformer.losses.stage import stage_supervision_loss

__all__ = [
    "DEFAULT_DICE_EPS",
    "KL_FORMS",
    "AlignmentLoss",
    "BCEDiceLoss",
    "alignment_components",
    "bce_dice_components",
    "bce_loss",
    "bernoulli_kl",
    "paper_kl",
    "soft_dice_loss",
    "squared_error",
    "stage_probabilities",
    "stage_supervision_loss",
]
