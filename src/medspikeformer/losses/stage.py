"""Deep supervision of stage mask heads: ``stage_supervision_loss``."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["stage_supervision_loss"]


def stage_supervision_loss(
    seg_loss: nn.Module, stage_logits: list[torch.Tensor], target: torch.Tensor
) -> torch.Tensor:
    """Mean over stages of ``L_seg(stage_i, y↓_i)``; a zero scalar when there are no stages.

    ``stage_logits``: one ``[B, K, h_i, w_i]`` map per stage; ``target``: the mask (``[B, 1, H, W]``
    binary or class ids, ``[B, K, H, W]`` multi-label), resized to each stage's ``[h_i, w_i]``
    by nearest-neighbour (stays binary / integer). ``seg_loss``: ``BCEDiceLoss`` or
    ``MultiClassDiceLoss``. Used for the joint
    teacher's stage heads (their maps are the alignment targets) and, optionally, for a model's
    own heads (``train.stage_supervision``).
    """
    if not stage_logits:
        return torch.zeros((), device=target.device)
    terms = []
    for s in stage_logits:
        y = (
            target
            if s.shape[-2:] == target.shape[-2:]
            else F.interpolate(target, size=s.shape[-2:], mode="nearest")
        )
        terms.append(seg_loss(s.float(), y))
    return torch.stack(terms).mean()
