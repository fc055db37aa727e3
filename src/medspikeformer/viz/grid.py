"""Qualitative grid like the paper's Fig. 3: image, ground truth, prediction and an error map.

The error map colours every pixel by its confusion-matrix cell (threshold 0.5 on probabilities):
true positive white, false positive red, false negative blue, true negative black — red/blue stays
distinguishable for the common red–green colour blindness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medspikeformer.viz.cells import (
    CELL_INCHES,
    DPI,
    ERROR_COLORS,
    error_map,
    legend_patches,
    save_with_legend,
)
from medspikeformer.viz.overlay import to_mask, to_rgb_uint8

__all__ = ["ERROR_COLORS", "error_map", "qualitative_grid"]  # the first two from viz.cells


def _dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Per-image Dice with the empty/empty case = 1."""
    inter = np.logical_and(gt, pred).sum()
    total = gt.sum() + pred.sum()
    return 1.0 if total == 0 else float(2.0 * inter / total)


def qualitative_grid(
    images: Sequence[Any],
    gts: Sequence[Any],
    preds: Sequence[Any] | Mapping[str, Sequence[Any]],
    out_png: str | Path,
    ids: Sequence[str] | None = None,
    threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
    multilabel: bool = False,
) -> Path:
    """Write a grid of rows ``image | ground truth | prediction | errors`` to ``out_png``.

    With ``class_names`` (a K-class model's predictions ``[K, H, W]``) the grid is
    :func:`~medspikeformer.viz.classes.multiclass_grid`: class colours with their legend and one
    error map per foreground class.

    With ``preds`` a mapping ``{method: predictions}`` (a comparison like Fig. 3), each method gets
    one error-map column instead (its title is the method name). Each prediction cell is titled with
    its per-image Dice. A legend of the error colours sits under the grid.

    Args:
        images: ``n`` images (``[C,H,W]`` tensors, ``H×W(×C)`` arrays).
        gts: ``n`` ground-truth masks of the same sizes.
        preds: ``n`` predicted masks/probabilities, or a mapping of method → ``n`` of them.
        out_png: where to write the PNG (parent folders are created).
        ids: optional row labels.

    Returns:
        The path written. The picture is ``n_cols·200 × (n·200 + 60)`` pixels.
    """
    from matplotlib.figure import Figure

    if class_names is not None and not isinstance(preds, Mapping):
        from medspikeformer.viz.classes import multiclass_grid

        return multiclass_grid(
            images,
            gts,
            preds,
            out_png,
            class_names,
            multilabel=multilabel,
            ids=ids,
            threshold=threshold,
        )
    n = len(images)
    if n == 0:
        raise ValueError("qualitative_grid needs at least one image")
    methods = dict(preds) if isinstance(preds, Mapping) else None
    if len(gts) != n or (methods is None and len(preds) != n):
        raise ValueError("images, gts and preds must have the same length")
    if methods is not None and any(len(v) != n for v in methods.values()):
        raise ValueError("every method needs one prediction per image")
    if ids is not None and len(ids) != n:
        raise ValueError("ids must have one entry per image")

    if methods is None:
        titles = ["image", "ground truth", "prediction", "errors"]
    else:
        titles = ["image", "ground truth", *methods.keys()]
    n_cols = len(titles)
    legend_in = 0.6
    fig = Figure(figsize=(n_cols * CELL_INCHES, n * CELL_INCHES + legend_in), dpi=DPI)
    bottom = legend_in / (n * CELL_INCHES + legend_in)
    axes = fig.subplots(n, n_cols, squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.97, bottom=bottom, wspace=0.04, hspace=0.18)
    for r in range(n):
        rgb = to_rgb_uint8(images[r])
        gt = to_mask(gts[r])
        if gt.shape != rgb.shape[:2]:
            raise ValueError(f"row {r}: mask {gt.shape} and image {rgb.shape[:2]} differ in size")
        cells: list[tuple[np.ndarray, str]] = [(rgb, titles[0]), (gt, titles[1])]
        if methods is None:
            p = to_mask(preds[r], threshold)
            cells.append((p, f"prediction (Dice {_dice(gt, p):.3f})"))
            cells.append((error_map(gt, p), "errors"))
        else:
            for name, plist in methods.items():
                p = to_mask(plist[r], threshold)
                cells.append((error_map(gt, p), f"{name} ({_dice(gt, p):.3f})"))
        for c, (arr, title) in enumerate(cells):
            ax = axes[r][c]
            if arr.dtype == np.bool_:
                ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(arr, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            label = title if r == 0 or c >= 2 else None
            if label:
                ax.set_title(label, fontsize=8)
        if ids is not None:
            axes[r][0].set_ylabel(str(ids[r]), fontsize=7)
    return save_with_legend(fig, out_png, legend_patches(ERROR_COLORS))
