"""The cells every qualitative picture shares: the error-map colours, the cell size, the legend
and the atomic PNG write (used by :mod:`~medspikeformer.viz.grid` and
:mod:`~medspikeformer.viz.classes`, which therefore need not import each other)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medspikeformer.errors import printable
from medspikeformer.outputs import atomic_path
from medspikeformer.viz.overlay import to_mask

__all__ = [
    "CELL_INCHES",
    "DPI",
    "ERROR_COLORS",
    "error_map",
    "legend_patches",
    "save_png",
    "save_with_legend",
]

#: RGB colour of each confusion cell in :func:`error_map`.
ERROR_COLORS: dict[str, tuple[int, int, int]] = {
    "true positive": (255, 255, 255),
    "false positive": (230, 40, 40),
    "false negative": (40, 110, 255),
    "true negative": (0, 0, 0),
}

#: Size of one grid cell in inches and the resolution of the written PNG.
CELL_INCHES = 2.0
DPI = 100


def error_map(gt: Any, pred: Any, threshold: float = 0.5) -> np.ndarray:
    """Colour each pixel by its confusion cell (see :data:`ERROR_COLORS`).

    Args:
        gt: ground-truth mask ``H×W`` (any form :func:`~medspikeformer.viz.overlay.to_mask` takes).
        pred: predicted mask or probabilities, same ``H×W``; thresholded at ``threshold``.

    Returns:
        ``H×W×3`` ``uint8``.
    """
    g = to_mask(gt)
    p = to_mask(pred, threshold)
    if g.shape != p.shape:
        raise ValueError(f"ground truth {g.shape} and prediction {p.shape} differ in size")
    out = np.zeros((*g.shape, 3), dtype=np.uint8)
    out[g & p] = ERROR_COLORS["true positive"]
    out[~g & p] = ERROR_COLORS["false positive"]
    out[g & ~p] = ERROR_COLORS["false negative"]
    return out


def legend_patches(colors: dict[str, Sequence[int]]) -> list[Any]:
    """One legend patch per ``name: (r, g, b)`` (0…255)."""
    from matplotlib.patches import Patch

    return [
        Patch(facecolor=np.asarray(col) / 255.0, edgecolor="0.5", label=name)
        for name, col in colors.items()
    ]


def save_with_legend(fig: Any, out_png: str | Path, handles: list[Any]) -> Path:
    """Draw ``handles`` as a legend under the panels and write ``fig`` as a PNG, atomically (no
    half-written picture on a full disk)."""
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    return save_png(fig, out_png, dpi=DPI)


def save_png(fig: Any, out_png: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` as a PNG atomically (no half-written picture on a full disk), every text in
    it made printable first: sample ids and file names come from the data, and matplotlib cannot
    draw the surrogate escapes of a name that is not UTF-8 (it raised after a whole evaluation)
    nor should a picture show raw control characters."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        raw = text.get_text()
        if raw and not raw.replace("\n", "").isprintable():  # line breaks are layout
            text.set_text("\n".join(printable(line) for line in raw.split("\n")))
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return out_png
