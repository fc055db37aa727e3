"""Ensembles of checkpoints (nnU-Net's habit): the members' probabilities averaged.

``predict`` and ``evaluate`` take further checkpoints with ``--ensemble CKPT`` (repeatable);
the ensemble's probability is the mean of the members' (sigmoid, or softmax over the K
classes; :func:`~medspikeformer.inference.sliding.forward_probs` averages them), thresholded or
argmaxed as one model's. Members must agree on everything that decides what a pixel means and
what the model sees: classes, training size, input channels, preprocessing, labels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medspikeformer.errors import CheckpointError
from medspikeformer.models.base import SegmentationModel
from medspikeformer.models.output import SegmentationOutput

__all__ = ["Ensemble", "load_ensemble_context", "member_mismatch"]


class Ensemble(SegmentationModel):
    """Several segmentation models of one kind as one: ``forward`` gives the logits of the
    mean probability (``logit(mean σ)`` / ``log(mean softmax)``), and ``forward_probs`` averages
    the members' probabilities directly (``ensemble_members``).

    Attributes copied from the first member: ``in_channels``, ``num_classes``, ``multilabel``,
    ``activation``, ``timesteps``, ``config``; ``size_divisor`` is the members' least common
    multiple.
    """

    def __init__(self, members: Sequence[SegmentationModel]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one model")
        self.ensemble_members = nn.ModuleList(members)
        first = members[0]
        self.model_name = "ensemble of " + ", ".join(
            m.model_name or type(m).__name__ for m in members
        )
        self.config = dict(first.config)
        self.in_channels = int(first.in_channels)
        self.num_classes = int(first.num_classes)
        self.multilabel = bool(first.multilabel)
        self.timesteps = max(int(m.timesteps) for m in members)
        self.is_spiking = any(bool(m.is_spiking) for m in members)
        self.size_divisor = math.lcm(*(int(m.size_divisor) for m in members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` → ``[B, K, H, W]`` logits whose activation is the mean probability."""
        from medspikeformer.inference.sliding import forward_probs

        probs = forward_probs(self, x).clamp(1e-7, 1 - 1e-7)
        if self.activation == "softmax":
            return probs.log()
        return torch.logit(probs)

    def forward_all(self, x: torch.Tensor, *, attention: bool = True) -> SegmentationOutput:
        """The mean-probability logits; an ensemble has no stage maps or attention of its own."""
        return SegmentationOutput(self.forward(x))


def member_mismatch(first: Any, other: Any) -> tuple[str, Any, Any] | None:
    """The first setting two :class:`~medspikeformer.inference.context.InferenceContext`
    disagree on, as ``(key, first's value, other's value)``; ``None`` when they agree."""

    def settings(ctx: Any) -> dict[str, Any]:
        return {
            "num_classes": int(ctx.model.num_classes),
            "multilabel": bool(ctx.model.multilabel),
            "training size": tuple(ctx.train_size),
            "in_channels": ctx.in_channels,
            "preprocessing": ctx.preprocessing.to_dict() if ctx.preprocessing else None,
            "data.labels": ctx.config.data.labels,
        }

    a, b = settings(first), settings(other)
    for key in a:
        if a[key] != b[key]:
            return key, a[key], b[key]
    return None


def load_ensemble_context(
    paths: Sequence[str | Path], *, device: Any = "cpu", size: Any = None, optimize: bool = False
) -> Any:
    """The :class:`~medspikeformer.inference.context.InferenceContext` of ``paths[0]`` with its
    model replaced by the :class:`Ensemble` of every checkpoint's (one path: that model alone).

    A member that differs from the first on classes, size, channels, preprocessing or labels is
    a ``CheckpointError`` naming both files and the key.
    """
    from medspikeformer.inference.context import load_context

    contexts = [load_context(p, device=device, size=size, optimize=optimize) for p in paths]
    first = contexts[0]
    for ctx in contexts[1:]:
        diff = member_mismatch(first, ctx)
        if diff is not None:
            key, va, vb = diff
            raise CheckpointError(
                f"{ctx.path}: {key} is {vb!r} but {first.path} has {va!r}; the checkpoints of "
                "an ensemble must agree on it"
            )
    if len(contexts) == 1:
        return first
    return dataclasses.replace(first, model=Ensemble([c.model for c in contexts]).eval())
