"""Losses: Eq. 13 segmentation loss (BCE + Dice; softmax CE + Dice and multi-label for K > 1), the Eq. 12 distribution alignment loss and the
deep supervision of stage mask heads."""

from __future__ import annotations

from medspikeformer.losses.alignment import (
    KL_FORMS,
    AlignmentLoss,
    alignment_components,
    bernoulli_kl,
    categorical_kl,
    paper_kl,
    squared_error,
    stage_probabilities,
)
from medspikeformer.losses.multiclass import (
    MultiClassDiceLoss,
    build_segmentation_loss,
    class_ids,
    multiclass_components,
    multilabel_components,
    one_hot,
    per_class_dice_loss,
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
    "MultiClassDiceLoss",
    "alignment_components",
    "bce_dice_components",
    "bce_loss",
    "bernoulli_kl",
    "build_segmentation_loss",
    "categorical_kl",
    "class_ids",
    "multiclass_components",
    "multilabel_components",
    "one_hot",
    "paper_kl",
    "per_class_dice_loss",
    "soft_dice_loss",
    "squared_error",
    "stage_probabilities",
    "stage_supervision_loss",
]
