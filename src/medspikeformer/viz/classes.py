"""Pictures of K-class predictions: class colours, a colour legend, per-class error maps.

Class ``c ≥ 1`` is drawn in :data:`CLASS_COLORS` ``[(c − 1) % 8]`` (the Okabe–Ito palette, told
apart under the common colour-vision deficiencies); the background (class 0) is left black or
shows the image. A softmax prediction is its argmax; a multi-label one ``prob >= threshold`` per
region, regions drawn in channel order (a later region covers an earlier one). The per-class
error map of class ``c`` is :func:`~medspikeformer.viz.grid.error_map` of the one-vs-rest masks
(``gt == c`` against ``pred == c``): the picture of that class's row of the global confusion
matrix the metrics count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medspikeformer.viz.overlay import as_numpy, to_rgb_uint8

__all__ = [
    "CLASS_COLORS",
    "class_color",
    "class_planes",
    "colorize_labels",
    "multiclass_grid",
    "overlay_labels",
]

#: Okabe–Ito colours (RGB) of classes 1, 2, … (cycled after 8).
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (255, 255, 255),
)


def class_color(index: int) -> tuple[int, int, int]:
    """RGB of foreground class ``index ≥ 1`` (background: black)."""
    return (0, 0, 0) if index == 0 else CLASS_COLORS[(index - 1) % len(CLASS_COLORS)]


def class_planes(
    labels: Any, num_classes: int, multilabel: bool = False, threshold: float = 0.5
) -> np.ndarray:
    """Boolean ``[K, H, W]`` one-vs-rest masks of any prediction or target form.

    ``labels``: class ids ``H×W`` / ``1×H×W`` (softmax targets, predicted id maps), or ``K×H×W``
    maps: softmax probabilities (argmax) or, with ``multilabel``, region probabilities /
    targets (``>= threshold``).
    """
    arr = as_numpy(labels)
    if arr.ndim == 3 and arr.shape[0] == 1 and num_classes > 1:
        arr = arr[0]
    if arr.ndim == 2:
        ids = np.rint(arr).astype(np.int64)
        return np.stack([ids == c for c in range(num_classes)])
    if arr.ndim != 3 or arr.shape[0] != num_classes:
        raise ValueError(f"expected H×W ids or {num_classes}×H×W maps, got shape {arr.shape}")
    if multilabel:
        return arr.astype(np.float32) >= threshold
    ids = arr.argmax(0)
    return np.stack([ids == c for c in range(num_classes)])


def colorize_labels(planes: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """``[K, H, W]`` boolean planes → ``H×W×3`` uint8: each foreground plane in its colour
    (plane 0 is drawn too when it is not the background, i.e. for multi-label planes pass
    ``planes`` with a leading all-false plane), ``background`` (``H×W×3``) or black elsewhere."""
    out = np.zeros((*planes.shape[1:], 3), np.uint8) if background is None else background.copy()
    for c in range(1, planes.shape[0]):
        out[planes[c]] = class_color(c)
    return out


def overlay_labels(image: Any, planes: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend the class colours of ``planes`` (``[K, H, W]``, plane 0 = background) over
    ``image``: ``H×W×3`` uint8."""
    rgb = to_rgb_uint8(image).astype(np.float32)
    out = rgb.copy()
    for c in range(1, planes.shape[0]):
        m = planes[c]
        out[m] = (1.0 - alpha) * rgb[m] + alpha * np.asarray(class_color(c), np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _with_background(planes: np.ndarray, multilabel: bool) -> np.ndarray:
    """Multi-label planes have no background plane: prepend one so that colours start at 1."""
    if not multilabel:
        return planes
    return np.concatenate([~planes.any(0, keepdims=True), planes])


def multiclass_grid(
    images: Sequence[Any],
    gts: Sequence[Any],
    preds: Sequence[Any],
    out_png: str | Path,
    class_names: Sequence[str],
    *,
    multilabel: bool = False,
    ids: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> Path:
    """Rows ``image | ground truth | prediction | errors of each foreground class`` and a legend
    of the class colours and the error colours, written to ``out_png``.

    ``gts``: class-id maps ``[1, H, W]`` (softmax) or ``[K, H, W]`` regions (multi-label);
    ``preds``: ``[K, H, W]`` probabilities. Each error cell is titled with that class's Dice.
    """
    from matplotlib.figure import Figure

    from medspikeformer.viz.cells import (
        CELL_INCHES,
        DPI,
        ERROR_COLORS,
        error_map,
        legend_patches,
        save_with_legend,
    )

    n, k = len(images), len(class_names)
    if n == 0 or len(gts) != n or len(preds) != n:
        raise ValueError("images, gts and preds must be non-empty and of the same length")
    fg = list(range(k)) if multilabel else list(range(1, k))
    titles = ["image", "ground truth", "prediction", *(f"errors: {class_names[c]}" for c in fg)]
    legend_in = 0.9
    fig = Figure(figsize=(len(titles) * CELL_INCHES, n * CELL_INCHES + legend_in), dpi=DPI)
    axes = fig.subplots(n, len(titles), squeeze=False)
    fig.subplots_adjust(
        left=0.01,
        right=0.99,
        top=0.97,
        bottom=legend_in / (n * CELL_INCHES + legend_in),
        wspace=0.04,
        hspace=0.18,
    )
    for r in range(n):
        rgb = to_rgb_uint8(images[r])
        g = class_planes(gts[r], k, multilabel, 0.5)
        p = class_planes(preds[r], k, multilabel, threshold)
        cells = [
            (rgb, "image"),
            (colorize_labels(_with_background(g, multilabel)), "ground truth"),
            (colorize_labels(_with_background(p, multilabel)), "prediction"),
        ]
        for c in fg:
            inter, total = (g[c] & p[c]).sum(), g[c].sum() + p[c].sum()
            dice = 1.0 if total == 0 else 2.0 * inter / total
            cells.append((error_map(g[c], p[c]), f"{class_names[c]} (Dice {dice:.3f})"))
        for c, (arr, title) in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(arr, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 or c >= 3:
                ax.set_title(title if c >= 3 or r == 0 else "", fontsize=8)
        if ids is not None:
            axes[r][0].set_ylabel(str(ids[r]), fontsize=7)
    classes = {class_names[c]: class_color(i) for i, c in enumerate(fg, start=1)}
    return save_with_legend(fig, out_png, legend_patches({**classes, **ERROR_COLORS}))
