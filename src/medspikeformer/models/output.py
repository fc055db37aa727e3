"""Typed model output for training and analysis."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SegmentationOutput:
    """What ``SegmentationModel.forward_all`` returns (in every mode).

    Attributes:
        logits: ``[B, 1, H, W]`` segmentation logits (mean over timesteps).
        stage_logits: one ``[B, 1, h_i, w_i]`` logit map per encoder unit (stage mask heads,
            mean over timesteps); empty for models without them (U-Net).
        attention: per-stage attention output, mean over timesteps, ``[B, C_i, h_i, w_i]``;
            ``None`` when a model has no attention or ``forward_all(x, attention=False)``.
    """

    logits: torch.Tensor
    stage_logits: list[torch.Tensor] = field(default_factory=list)
    attention: list[torch.Tensor] | None = None
