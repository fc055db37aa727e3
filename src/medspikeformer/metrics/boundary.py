"""Boundary metrics per image: HD95 and normalised surface Dice, through MONAI's functions.

Both measure how far the predicted outline lies from the true one, which the overlap scores
(Dice, IoU) hardly see on large structures. Distances are in pixels of the evaluated mask (or in
the units of ``spacing``).

- **HD95**: the 95th percentile of the symmetric surface distances
  (``monai.metrics.compute_hausdorff_distance(..., percentile=95)``).
- **NSD** at tolerance τ: the share of both outlines within τ of the other
  (``monai.metrics.compute_surface_dice``), in [0, 1].

Empty masks, the conventions of nnU-Net's evaluation: both empty → HD95 0 and NSD 1 (a perfect
negative); exactly one empty → both undefined (``None``: left out of the means and counted).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_NSD_TOLERANCE", "boundary_scores", "summarise_boundary"]

DEFAULT_NSD_TOLERANCE = 2.0
"""τ of the normalised surface Dice, in pixels (or spacing units): a two-pixel band."""


def boundary_scores(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    tolerance: float = DEFAULT_NSD_TOLERANCE,
    spacing: Sequence[float] | None = None,
) -> tuple[float | None, float | None]:
    """``(HD95, NSD)`` of one binary mask pair ``[H, W]`` or a volume pair ``[D, H, W]`` (any
    dtype; non-zero = foreground); ``spacing`` per axis (default 1: pixels)."""
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    p, t = np.asarray(pred) != 0, np.asarray(target) != 0
    if p.shape != t.shape or p.ndim not in (2, 3):
        raise ValueError(
            f"boundary_scores needs two [H, W] or [D, H, W] masks, got {p.shape} and {t.shape}"
        )
    if not p.any() and not t.any():
        return 0.0, 1.0
    if not p.any() or not t.any():
        return None, None

    def onehot(m: np.ndarray) -> torch.Tensor:  # [1, 2, *spatial]: background, foreground
        fg = torch.from_numpy(m.astype(np.float32))
        return torch.stack([1 - fg, fg])[None]

    kwargs = {"spacing": [float(v) for v in spacing]} if spacing is not None else {}
    with warnings.catch_warnings():  # MONAI's own deprecation notices about its internals
        warnings.simplefilter("ignore", FutureWarning)
        hd95 = compute_hausdorff_distance(
            onehot(p), onehot(t), include_background=False, percentile=95, **kwargs
        )
        nsd = compute_surface_dice(
            onehot(p), onehot(t), class_thresholds=[float(tolerance)], include_background=False,
            **kwargs,
        )  # fmt: skip
    return float(hd95.item()), float(nsd.item())


def summarise_boundary(values: Sequence[float | None], name: str) -> dict[str, float | int | None]:
    """``{name: mean, name_median: median}`` over the defined values and ``boundary_undefined``:
    how many images had exactly one empty mask."""
    defined = [v for v in values if v is not None]
    return {
        name: float(np.mean(defined)) if defined else None,
        f"{name}_median": float(np.median(defined)) if defined else None,
        "boundary_undefined": len(values) - len(defined),
    }
