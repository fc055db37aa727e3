"""Typed model output for training and analysis, and the one logits → probabilities rule."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["ACTIVATIONS", "SegmentationOutput", "head_activation", "to_labels", "to_probabilities"]

#: How a model's K logit channels become probabilities.
ACTIVATIONS = ("sigmoid", "softmax")


def head_activation(num_classes: int, multilabel: bool = False) -> str:
    """``"sigmoid"`` for one channel (binary) or K overlapping regions (``multilabel``),
    ``"softmax"`` for K > 1 mutually exclusive classes (class 0 = background)."""
    return "sigmoid" if num_classes == 1 or multilabel else "softmax"


def to_probabilities(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """``[B, K, ...]`` logits → probabilities of the same shape: sigmoid per channel or softmax
    over the channel axis."""
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    return torch.sigmoid(logits)


def to_labels(probs: torch.Tensor, activation: str, threshold: float = 0.5) -> torch.Tensor:
    """Probabilities ``[B, K, H, W]`` → the prediction: softmax → class ids ``[B, 1, H, W]``
    (int64, argmax); sigmoid → boolean ``[B, K, H, W]`` (``prob >= threshold``)."""
    if activation == "softmax":
        return probs.argmax(dim=1, keepdim=True)
    return probs >= threshold


@dataclass
class SegmentationOutput:
    """What ``SegmentationModel.forward_all`` returns (in every mode).

    Attributes:
        logits: ``[B, K, H, W]`` segmentation logits (mean over timesteps), K = num_classes.
        stage_logits: one ``[B, K, h_i, w_i]`` logit map per encoder unit (stage mask heads,
            mean over timesteps); empty for models without them (U-Net).
        attention: per-stage attention output, mean over timesteps, ``[B, C_i, h_i, w_i]``;
            ``None`` when a model has no attention or ``forward_all(x, attention=False)``.
    """

    logits: torch.Tensor
    stage_logits: list[torch.Tensor] = field(default_factory=list)
    attention: list[torch.Tensor] | None = None
