"""The time axis of the ``[T, B, ...]`` layout: folding T into the batch and back, per-frame ops.

Convolutions, BatchNorm and interpolation work on ``[N, C, H, W]``; inside the network every
tensor is ``[T, B, C, H, W]``. Folding is ``flatten(0, 1)`` / ``view`` — views, no copies.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def fold(x: torch.Tensor) -> torch.Tensor:
    """``[T, B, ...]`` → ``[T·B, ...]`` (a view)."""
    return x.flatten(0, 1)


def unfold(x: torch.Tensor, t: int) -> torch.Tensor:
    """``[T·B, ...]`` → ``[T, B, ...]`` for ``t`` = T (a view)."""
    return x.view(t, -1, *x.shape[1:])


def seq_apply(module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a per-frame module to ``[T, B, ...]`` by folding T into the batch."""
    t, b = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.view(t, b, *y.shape[1:])


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2 upsampling of ``[T, B, C, h, w]`` → ``[T, B, C, 2h, 2w]``."""
    return seq_apply(lambda z: F.interpolate(z, scale_factor=2.0, mode="nearest"), x)
