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

K classes (:func:`boundary_row`): each scored class one-vs-rest, as MONAI's metrics do per
channel with ``include_background=False``; an image's ``hd95`` / ``nsd`` is the mean over the
scored classes present in its truth or its prediction and defined there (a class absent from
both would add a free 0 / 1, the rule the per-image Dice follows too).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEFAULT_NSD_TOLERANCE",
    "boundary_row",
    "boundary_scores",
    "summarise_boundary",
    "summarise_boundary_rows",
]

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


def boundary_row(
    pred: np.ndarray,
    truth: np.ndarray,
    scored: Sequence[int],
    names: Sequence[str] | None = None,
    *,
    spacing: Sequence[float] | None = None,
    tolerance: float = DEFAULT_NSD_TOLERANCE,
) -> dict[str, float | None]:
    """HD95 / NSD of one image or case from boolean planes ``[K, *S]`` (prediction, truth).

    Binary (``names`` None): ``{"hd95", "nsd"}`` of plane 0. K classes: ``hd95_<name>``,
    ``nsd_<name>`` for every class in ``scored`` and ``hd95`` / ``nsd`` their mean over the
    classes present in either mask and defined (``None`` when there is none).
    """
    if names is None:
        hd95, nsd = boundary_scores(pred[0], truth[0], tolerance=tolerance, spacing=spacing)
        return {"hd95": hd95, "nsd": nsd}
    row: dict[str, float | None] = {}
    present_hd, present_nsd = [], []
    for c in scored:
        hd95, nsd = boundary_scores(pred[c], truth[c], tolerance=tolerance, spacing=spacing)
        row[f"hd95_{names[c]}"], row[f"nsd_{names[c]}"] = hd95, nsd
        if (pred[c].any() or truth[c].any()) and hd95 is not None:
            present_hd.append(hd95)
            present_nsd.append(nsd)
    row["hd95"] = float(np.mean(present_hd)) if present_hd else None
    row["nsd"] = float(np.mean(present_nsd)) if present_nsd else None
    return row


def summarise_boundary_rows(
    rows: Sequence[dict[str, float | None]],
) -> dict[str, float | int | None]:
    """The summary of :func:`boundary_row` rows: ``hd95`` (mean), ``hd95_median``, ``nsd``
    (mean), ``nsd_median``, ``boundary_undefined`` (rows whose ``hd95`` is undefined) and, for K classes, the
    mean of every ``hd95_<name>`` / ``nsd_<name>`` over the rows where it is defined."""
    out = dict(summarise_boundary([r["hd95"] for r in rows], "hd95"))
    nsd = summarise_boundary([r["nsd"] for r in rows], "nsd")
    out["nsd"], out["nsd_median"] = nsd["nsd"], nsd["nsd_median"]
    for key in rows[0] if rows else ():
        if key not in ("hd95", "nsd"):
            out[key] = summarise_boundary([r[key] for r in rows], key)[key]
    return out
